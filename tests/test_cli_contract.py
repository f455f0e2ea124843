"""The command line's contract under bad input, beyond the scenario's cases (found by review): a
sync that could not read its CPL, settings that are wrong, an intake file with a bad item late in it,
homes and numbers out of range, and flow files that YAML accepts but mean something else."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from flows.bootstrap import bootstrap
from flows.cli import MAX_WORKERS_PER_CORE, main
from flows.domain.case import Case
from flows.queue_message import Message
from flows.settings import SAMPLES, Settings
from tests.support.cpl_workbooks import write_cpl_csv
from tests.support.loopback import Loopback
from tests.test_scenario import CPL_20, CPL_24, RESPONSES, cases_json, cli, states

NOW = "2026-11-24T09:05:00Z"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error")]
    assert len(err) == 1, err
    return err[0]


# --- sync --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpl", "says"),
    [
        ("/nonexistent/cpl.xlsx", "cannot read CPL file"),
        (str(SAMPLES / "forms"), "cannot read CPL file"),
        (RESPONSES, ""),  # JSON is no CPL: whatever the reader says of it
    ],
)
def test_a_sync_that_cannot_read_its_cpl_exits_non_zero_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cpl: str, says: str
) -> None:
    assert cli(tmp_path / "home", "sync", "--cpl", cpl) == 1
    line = one_error_line(capsys)
    assert line.startswith("error: secas-sync: fetch: ") and says in line


def test_a_sync_that_worked_exits_zero_and_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(tmp_path / "home", "sync", "--cpl", CPL_20) == 0
    assert f"syncing with the CPL at {CPL_20}" in capsys.readouterr().err


def test_a_sync_is_judged_by_its_own_run_not_by_one_an_earlier_command_left_queued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sync interrupted before its drain leaves its message queued; the next sync's drain runs it too.
    Its failure was this one's status 1, for a CPL that was read."""
    home = tmp_path / "home"
    with bootstrap(Settings(home=home)) as app:
        left = Message(type="http", flow="secas-sync", body={"location": str(tmp_path / "gone.xlsx")})
        app.bridge.submit(left)
    assert cli(home, "sync", "--cpl", CPL_20) == 0
    assert "error" not in capsys.readouterr().err
    with bootstrap(Settings(home=home)) as app:
        earlier = app.bridge.engine.runs.get(f"{left.message_id}-secas-sync")
        assert earlier is not None and earlier.failed_actions()  # it did run, and fail, in that drain
    assert cli(home, "sync", "--cpl", str(tmp_path / "gone.xlsx")) == 1  # its own failure still counts
    assert "error: secas-sync: fetch: " in one_error_line(capsys)


def test_a_long_download_shows_its_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = b"not a workbook" * 300_000  # 4 MiB: progress at each tenth
    with served(body) as url:
        assert cli(tmp_path / "home", "sync", "--cpl", url) == 1  # downloaded, then not readable
    err = capsys.readouterr().err
    shown = re.findall(r"downloading the CPL: ([\d.]+) of 4\.0 MiB \((\d+)%\)", err)
    assert [percent for _, percent in shown] == [str(tenth * 10) for tenth in range(1, 11)]
    assert float(shown[-1][0]) == pytest.approx(len(body) / 1024 / 1024, abs=0.05)


def test_a_small_download_prints_no_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with served(Path(CPL_20).read_bytes()) as url:
        assert cli(tmp_path / "home", "sync", "--cpl", url) == 0
    assert "downloading" not in capsys.readouterr().err


@contextmanager
def served(body: bytes) -> Iterator[str]:
    """``body`` served over HTTP on loopback, with its length, to every GET."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet in test output."""

    with Loopback(Handler) as server:
        yield f"http://127.0.0.1:{server.port}/cpl.xlsx"


def test_an_empty_cpl_is_not_kept_as_a_publication(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kept, it read as every entry withdrawn, and the next real CPL as every entry new: case 8's
    promotion to the EPCL went unseen and the case was never closed."""
    home = tmp_path / "home"
    empty = write_cpl_csv(tmp_path / "empty.csv", [])  # the header row alone
    assert cli(home, "intake", RESPONSES, now="2026-11-23T14:00:00Z") == 0
    assert cli(home, "sync", "--cpl", CPL_20, now="2026-11-23T14:05:00Z") == 0
    assert cli(home, "sync", "--cpl", str(empty), now="2026-11-23T15:00:00Z") == 1
    assert "lists no SMETS1 entries: not kept" in one_error_line(capsys)
    assert cli(home, "sync", "--cpl", CPL_24) == 0
    assert states(cases_json(home, capsys))["8"] == "closed"


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("BRIDGE_WAITING_LIMIT_HOURS", "abc", "BRIDGE_WAITING_LIMIT_HOURS: Input should be a valid number"),
        ("BRIDGE_WAITING_LIMIT_HOURS", "inf", "BRIDGE_WAITING_LIMIT_HOURS: Input should be a finite number"),
        ("BRIDGE_WAITING_LIMIT_HOURS", "1e308", "BRIDGE_WAITING_LIMIT_HOURS: Input should be less than"),
        ("BRIDGE_CPL_MAX_BYTES", "-5", "BRIDGE_CPL_MAX_BYTES: Input should be greater than 0"),
        ("BRIDGE_CPL_ALIASES", "{bad", "nested settings are JSON"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert cli(tmp_path / "home", "cases") == 2
    assert says in one_error_line(capsys)


def test_without_flow_files_the_bridge_refuses_to_start_rather_than_eat_the_queue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_FLOWS_DIR", str(tmp_path / "no-flows"))
    assert cli(tmp_path / "home", "intake", RESPONSES) == 2
    assert "no flow files (*.yaml) here: check BRIDGE_FLOWS_DIR" in one_error_line(capsys)
    monkeypatch.delenv("BRIDGE_FLOWS_DIR")
    with bootstrap(Settings(home=tmp_path / "home")) as app:
        assert app.cases.list() == []


# --- intake ------------------------------------------------------------------------------------


def responses() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(Path(RESPONSES).read_text(encoding="utf-8"))
    return loaded


def test_an_item_that_cannot_be_queued_stops_the_intake_before_anything_is_queued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = responses()[:4]
    items[2]["responder"] = "\ud800"  # a lone surrogate: JSON text can hold it, UTF-8 cannot
    file = tmp_path / "responses.json"
    file.write_text(json.dumps(items), encoding="utf-8")
    assert cli(tmp_path / "home", "intake", str(file)) == 2
    assert f"{file}: item 2: cannot be queued" in one_error_line(capsys)
    assert cli(tmp_path / "home", "drain") == 0
    assert "0 message(s) were waiting" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[" * 100_000 + "]" * 100_000, "not usable JSON: nested too deeply"),
        ('{"responseId": ' + "9" * 5001 + "}", "not valid JSON: Exceeds the limit"),
    ],
)
def test_json_that_python_cannot_read_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str
) -> None:
    file = tmp_path / "odd.json"
    file.write_text(text, encoding="utf-8")
    assert cli(tmp_path / "home", "intake", str(file)) == 2
    assert f"{file}: {says}" in one_error_line(capsys)


def test_a_rejected_response_is_said_so_at_intake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = responses()[:2]
    items[1]["submitDate"] = "yesterday"
    file = tmp_path / "responses.json"
    file.write_text(json.dumps(items), encoding="utf-8")
    assert cli(tmp_path / "home", "intake", str(file)) == 0  # a rejected case is an outcome, not bad input
    err = capsys.readouterr().err
    assert f"response {items[1]['responseId']} rejected: " in err and "submitted" in err


# --- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--home", "", "cases"], "the home is empty"),
        (["--now", "0001-01-01T00:00:00Z", "tick"], "not an instant between 1970 and 9998"),
        (["serve", "--port", "99999"], "not a TCP port"),
        (
            ["intake", RESPONSES, "--workers", str(MAX_WORKERS_PER_CORE * (os.cpu_count() or 1) + 1)],
            "at most",
        ),
    ],
)
def test_arguments_out_of_range_are_refused_by_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("value", ["   ", "not-a-folder"])
def test_a_bad_bridge_home_is_refused_like_a_bad_home_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BRIDGE_HOME", value)
    with pytest.raises(SystemExit) as exit_:
        main(["cases"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--home" in err and ("the home is empty" in err or "is a file, not a folder" in err)


def test_a_file_given_as_the_home_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "not-a-folder"
    file.write_text("")
    with pytest.raises(SystemExit):
        main(["--home", str(file), "cases"])
    assert f"the home {str(file)!r} is a file, not a folder" in capsys.readouterr().err


def test_a_home_written_by_a_later_version_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a roll-back: a traceback, status 1, where the home's file is what the operator must see."""
    home = tmp_path / "home"
    with bootstrap(Settings(home=home)):
        pass
    with closing(sqlite3.connect(home / "bridge.sqlite3")) as connection, connection:
        connection.execute("UPDATE schema_versions SET version = version + 1 WHERE component = 'cases'")
    assert cli(home, "cases") == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: written by a later version of the bridge: {home / 'bridge.sqlite3'}: ")
    assert "the cases tables are at schema version" in line


def test_a_home_whose_file_is_not_a_database_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "bridge.sqlite3").write_text("this is not a database, just some text to fill a page\n")
    assert cli(home, "cases") == 2
    line = one_error_line(capsys)
    assert line == (
        f"error: {home / 'bridge.sqlite3'}: file is not a database: the home's file is damaged or is not "
        "the bridge's"
    )


def test_a_home_whose_database_cannot_be_opened_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite's own OperationalError (cannot open, locked past the wait) printed a traceback."""
    home = tmp_path / "home"
    (home / "bridge.sqlite3").mkdir(parents=True)  # a folder where the file should be
    assert cli(home, "intake", str(SAMPLES / "forms" / "responses.json")) == 1
    assert one_error_line(capsys) == (
        f"error: the home's database ({home / 'bridge.sqlite3'}): unable to open database file"
    )


# --- flow files --------------------------------------------------------------------------------


def test_validate_refuses_a_key_written_twice_and_aliases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        "name: twice\ntriggers: [{type: http}]\nactions:\n"
        "  fetch: {use: secas.sync, inputs: {location: a}}\n"
        "  fetch: {use: secas.sync, inputs: {location: b}}\n",
        encoding="utf-8",
    )
    laughs = tmp_path / "laughs.yaml"
    layers = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 9)}]" for n in range(8)
    ]
    laughs.write_text("name: laughs\ntriggers: [{type: http}]\nactions: {}\n" + "\n".join(layers) + "\n")
    assert cli(tmp_path / "home", "validate", str(twice), str(laughs)) == 1
    err = capsys.readouterr().err
    assert f"{twice}:5: 'fetch' is written twice in one mapping (also line 4)" in err
    assert re.search(
        rf"{re.escape(str(laughs))}:\d+: not valid YAML: anchors and aliases are not allowed", err
    )


def test_the_help_says_what_the_home_and_the_files_are(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--help"], ["intake", "--help"], ["sync", "--help"]):
        with pytest.raises(SystemExit):
            main(args)
    shown = " ".join(capsys.readouterr().out.split())
    assert "default: $BRIDGE_HOME, else .bridge" in shown
    assert "before anything is queued" in shown and "rejected case" in shown
    assert "a workbook (.xlsx) or CSV file, or an http(s) URL" in shown


def test_a_graph_delta_page_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = SAMPLES / "forms" / "list-items-delta.json"
    assert cli(tmp_path / "home", "intake", str(page)) == 2
    assert f"{page}: a Graph delta page, not a response: give its 'value' items" in one_error_line(capsys)


def test_cases_json_is_valid_json_however_long_a_problem_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    long_problem = "image_hash: notified '" + "AB" * 64 + "', CPL has '" + "CD" * 64 + "'"
    with bootstrap(Settings(home=home)) as app:
        case = Case.open("R-1", at=datetime(2026, 11, 24, tzinfo=UTC), supplier="Bramble Power")
        case.problems.append(long_problem)
        app.cases.add(case)
    capsys.readouterr()
    assert cli(home, "cases", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["problems"] == [long_problem]


# --- run ---------------------------------------------------------------------------------------


def test_run_of_the_intake_flow_takes_a_form_response_as_intake_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given as the trigger, a response failed the real run (``ValidationError: ***redacted***``)
    while the dry run said Succeeded."""
    response = {**json.loads(Path(RESPONSES).read_text())[0], "responseId": 901}
    given = tmp_path / "response.json"
    given.write_text(json.dumps(response))
    home = tmp_path / "home"
    assert cli(home, "run", "notification-intake", "--input", str(given), "--dry-run") == 0
    assert cli(home, "run", "notification-intake", "--input", str(given)) == 0
    assert "Succeeded" in capsys.readouterr().out.splitlines()[0]
    assert states(cases_json(home, capsys)) == {"901": "awaiting_cpl"}
    as_trigger = tmp_path / "trigger.json"  # what the flow's own trigger holds is taken too
    as_trigger.write_text(json.dumps({"response_id": "902", "payload": {**response, "responseId": 902}}))
    assert cli(home, "run", "notification-intake", "--input", str(as_trigger)) == 0
    assert states(cases_json(home, capsys))["902"] == "awaiting_cpl"


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_run_of_the_intake_flow_refuses_what_is_no_form_response_dry_run_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: list[str]
) -> None:
    given = tmp_path / "not-a-response.json"
    given.write_text(json.dumps({"supplier": "Bramble Power"}))
    assert cli(tmp_path / "home", "run", "notification-intake", "--input", str(given), *dry_run) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {given}: notification-intake is run by a form response: give one")
    assert line.endswith("the response has no responseId")
