"""The command line's reading commands (``runs``, ``cases``, ``poisoned``), as a reviewer drove them:
a run id to copy, a flow name with a typo, a home that does not exist."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from flows.bootstrap import bootstrap
from flows.cli import main
from flows.cli_output import print_runs
from flows.settings import Settings
from tests.support.demo_home import demo_home

RUN_ID = re.compile(r"[0-9a-f]{32}-[a-z-]+")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return demo_home(tmp_path / "home")


def test_runs_shows_each_run_id_whole_on_one_line_for_runs_show(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Folded in the column, no id could be copied: the first line's piece was not a run."""
    with bootstrap(Settings(home=home)) as app:
        ids = [run.run_id for run in app.bridge.engine.runs.find(key=None, flow=None)]
    capsys.readouterr()
    assert main(["--home", str(home), "runs"]) == 0  # piped, as under pytest
    piped = capsys.readouterr().out
    narrow = io.StringIO()
    with bootstrap(Settings(home=home)) as app:
        print_runs(Console(file=narrow, width=80), app.bridge.engine.runs.find(key=None, flow=None))
    for shown in (piped, narrow.getvalue()):
        on_lines = [found for line in shown.splitlines() for found in RUN_ID.findall(line)]
        assert sorted(on_lines) == sorted(ids)
    first = piped.splitlines()[4].split("│")[1].strip()  # what a copy of the first row's cell takes
    assert main(["--home", str(home), "runs", "show", first]) == 0


def test_runs_of_an_unknown_flow_is_refused_as_graph_refuses_it(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(home), "runs", "--flow", "emergency_load"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown flow 'emergency_load'; flows: case-decision") and "\n" not in err


@pytest.mark.parametrize("command", [["cases"], ["runs"], ["poisoned"]])
def test_a_read_on_a_home_that_is_not_there_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """A mistyped ``--home`` made an empty home and showed no case at all, as if there were none."""
    missing = tmp_path / "hoem"
    assert main(["--home", str(missing), *command]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: no bridge home at {missing}: the folder does not exist (a mistyped --home or "
        "$BRIDGE_HOME? intake, sync or demo make one)"
    )
    assert not missing.exists()
