"""The command line's flow tools (validate, graph) and settings read from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import main
from flows.settings import PROJECT_ROOT, Settings


def test_validate_accepts_the_shipped_flows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "validate"]) == 0
    assert "6 flow file(s) valid" in capsys.readouterr().out


def test_validate_rejects_a_bad_flow_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ntriggers: [{type: http}]\nactions:\n"
        "  first:\n    use: nowhere.nothing\n"
        "  second:\n    use: cases.open\n    inputs: {x: '${actions.third.outputs}'}\n"
        "  third:\n    use: cases.open\n"
    )
    assert main(["--home", str(tmp_path / "home"), "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5: action 'first' uses unknown connector 'nowhere.nothing'" in err
    assert f"{bad}:8: 'second' reads actions.third, which no earlier action produces" in err


def test_graph_prints_a_mermaid_flowchart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "graph", "emergency-load"]) == 0
    out = capsys.readouterr().out
    assert "flowchart TD" in out
    assert "smi.load" in out


def test_graph_of_an_unknown_flow_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(tmp_path), "graph", "nope"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: unknown flow 'nope'; flows: case-decision")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_WAITING_LIMIT_HOURS", "12")
    monkeypatch.setenv("BRIDGE_CPL_ALIASES", '{"firmware_version": ["FW Ver"]}')
    monkeypatch.setenv("BRIDGE_MAIL_SENDER", "ops@dcc.example")
    settings = Settings()
    assert settings.waiting_limit_hours == 12
    assert settings.cpl_aliases == {"firmware_version": ["FW Ver"]}
    assert settings.mail_sender == "ops@dcc.example"
    assert settings.flows_dir == PROJECT_ROOT / "flows" / "definitions"
    assert "mail_sender" not in settings.flow_settings()
