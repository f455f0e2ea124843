"""The sample scenario end to end through the command line, on the embedded defaults.

Every response must end in its expected state; the outbox holds one confirmation per loaded case;
the inventory one row per loaded device model; the duplicate delivery changes nothing.
"""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.embedded.inventory import SqliteInventory
from adapters.embedded.publications import SqlitePublicationStore
from adapters.embedded.runs import SqliteRunStore
from flows.cli import main
from flows.settings import SAMPLES
from tests.expected import FINAL_STATES, LOADED_ENTRIES, STATES_AFTER_FIRST_SYNC

CPL_20 = str(SAMPLES / "cpl" / "cpl-2026-11-20.xlsx")
CPL_24 = str(SAMPLES / "cpl" / "cpl-2026-11-24.xlsx")
RESPONSES = str(SAMPLES / "forms" / "responses.json")


def cli(home: Path, *args: str, now: str = "2026-11-24T09:05:00Z") -> int:
    return main(["--home", str(home), "--now", now, *args])


def cases_json(home: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert cli(home, "cases", "--json") == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def states(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {str(row["response_id"]): row["status"] for row in rows}


def loaded_mails(home: Path) -> list[email.message.EmailMessage]:
    messages = []
    for path in sorted((home / "outbox" / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        messages.append(message)
    return [m for m in messages if "mail/loaded/" in str(m["X-Bridge-Idempotency-Key"])]


def check_final_outcome(home: Path, rows: list[dict[str, Any]]) -> None:
    assert states(rows) == FINAL_STATES
    by_id = {str(row["response_id"]): row for row in rows}
    for response_id, entry_id in LOADED_ENTRIES.items():
        assert by_id[response_id]["cpl_entry_id"] == entry_id
    problems = by_id["4"]["problems"]
    assert isinstance(problems, list)
    assert any("firmware_version" in p and "01030012" in p and "01030011" in p for p in problems)
    assert any("device_type" in p for p in by_id["5"]["problems"])
    assert any("responder" in p for p in by_id["7"]["problems"])

    mails = loaded_mails(home)
    assert sorted(str(m["X-Bridge-Idempotency-Key"]) for m in mails) == sorted(
        f"mail/loaded/{response_id}/{entry_id}" for response_id, entry_id in LOADED_ENTRIES.items()
    )
    with SqliteInventory(home / "bridge.sqlite3") as inventory:
        records = inventory.all()
    assert sorted(r.cpl_entry_id for r in records) == sorted(LOADED_ENTRIES.values())
    assert len({r.dmc for r in records}) == len(records)
    acknowledgements = list((home / "outbox" / "mail").glob("mail_acknowledge_2*"))
    assert len(acknowledgements) == 1  # response 2 was delivered twice


def test_demo_reaches_every_expected_outcome(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "demo"
    assert main(["--home", str(home), "demo"]) == 0
    out = capsys.readouterr().out
    assert "needs_attention" in out
    assert f"Operator console: python -m flows --home {home} serve" in out
    check_final_outcome(home, cases_json(home, capsys))


def test_driving_intake_and_two_syncs_by_hand_gives_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "by-hand"
    assert cli(home, "intake", RESPONSES, now="2026-11-23T14:00:00Z") == 0
    assert cli(home, "sync", "--cpl", CPL_20, now="2026-11-23T14:05:00Z") == 0
    assert states(cases_json(home, capsys)) == STATES_AFTER_FIRST_SYNC
    assert cli(home, "sync", "--cpl", CPL_24, now="2026-11-24T09:05:00Z") == 0
    check_final_outcome(home, cases_json(home, capsys))
    with SqlitePublicationStore(home / "bridge.sqlite3") as publications:
        latest = publications.latest()
        assert latest is not None
        raw = publications.get_raw(latest.publication.source_sha256)
    assert raw == Path(CPL_24).read_bytes()  # the file as SECAS published it: evidence for each load

    # The same responses and the same CPL again change nothing.
    assert cli(home, "intake", RESPONSES, now="2026-11-24T10:00:00Z") == 0
    assert cli(home, "sync", "--cpl", CPL_24, now="2026-11-24T10:05:00Z") == 0
    check_final_outcome(home, cases_json(home, capsys))


def test_a_case_waiting_past_the_limit_is_escalated_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "escalate"
    assert cli(home, "intake", RESPONSES, now="2026-11-23T14:00:00Z") == 0
    assert cli(home, "sync", "--cpl", CPL_20, now="2026-11-23T14:05:00Z") == 0
    assert cli(home, "sync", "--cpl", CPL_24, now="2026-11-23T14:10:00Z") == 0
    cards = home / "outbox" / "teams"
    before = set(cards.glob("*.json"))
    lifecycle = ("tick", "--flow", "case-lifecycle")
    assert cli(home, *lifecycle, now="2026-11-24T14:05:00Z") == 0  # 24 h: within the 72 h limit
    assert set(cards.glob("*.json")) == before
    assert cli(home, *lifecycle, now="2026-11-26T14:06:00Z") == 0  # past it: case 6 escalates
    assert cli(home, *lifecycle, now="2026-11-26T15:06:00Z") == 0  # and only once
    new = [json.loads(p.read_text()) for p in set(cards.glob("*.json")) - before]
    assert len(new) == 1
    assert "6" in json.dumps(new[0])
    assert states(cases_json(home, capsys))["6"] == "awaiting_cpl"


def test_runs_are_found_by_business_key_and_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "runs"
    assert cli(home, "intake", RESPONSES) == 0
    assert cli(home, "sync", "--cpl", CPL_24) == 0
    with SqliteRunStore(home / "bridge.sqlite3") as runs:
        by_supplier = runs.find(key="Bramble Power")
        by_entry = runs.find(key="S1-000318")
        by_response = runs.find(key="2")
    assert {r.flow for r in by_supplier} == {"notification-intake"}
    assert len(by_supplier) == 4  # responses 2, 6, 7 (which claims Bramble Power) and 2 again
    assert {r.flow for r in by_entry} == {"emergency-load"}
    assert {"notification-intake", "emergency-load"} <= {r.flow for r in by_response}

    capsys.readouterr()
    assert cli(home, "runs", "--key", "S1-000318") == 0
    assert by_entry[0].run_id in capsys.readouterr().out
    assert cli(home, "runs", "show", by_entry[0].run_id) == 0
    shown = capsys.readouterr().out
    assert "each_case" in shown
    assert "smi/load/2/S1-000318" not in shown or "load" in shown


def test_a_dry_run_loads_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "dry"
    assert cli(home, "intake", RESPONSES, now="2026-11-23T14:00:00Z") == 0
    trigger = tmp_path / "trigger.json"
    trigger.write_text(json.dumps({"location": CPL_24}))
    capsys.readouterr()
    assert cli(home, "run", "secas-sync", "--input", str(trigger), "--dry-run") == 0
    assert "would_call" in capsys.readouterr().out
    assert states(cases_json(home, capsys))["2"] == "awaiting_cpl"
    with SqliteInventory(home / "bridge.sqlite3") as inventory:
        assert inventory.all() == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["intake", "/nonexistent/responses.json"], "cannot read /nonexistent/responses.json"),
        (["run", "no-such-flow", "--input", RESPONSES], "unknown flow 'no-such-flow'"),
        (["runs", "show", "missing-run"], "no run 'missing-run'"),
        (["runs", "resubmit", "missing-run"], "no run 'missing-run'"),
    ],
)
def test_bad_input_exits_non_zero_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    assert cli(tmp_path / "home", *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert fragment in err[0]


def test_invalid_json_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"responseId": 1,')
    assert cli(tmp_path / "home", "intake", str(bad)) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not valid JSON" in err


def test_demo_refuses_a_home_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "bridge.sqlite3").write_text("")
    assert main(["--home", str(tmp_path / "used"), "demo"]) == 2
    assert "fresh home" in capsys.readouterr().err


PERSONAL = (
    "+44 20 7946",
    "@bramblepower.example",
    "@amberline-energy.example",
    "Tom Okafor",
    "Priya Natarajan",
)


def test_no_contact_detail_reaches_the_run_history(tmp_path: Path) -> None:
    home = tmp_path / "private"
    assert cli(home, "intake", RESPONSES, now="2026-11-23T14:00:00Z") == 0
    assert cli(home, "sync", "--cpl", CPL_24, now="2026-11-24T09:05:00Z") == 0
    import sqlite3

    with sqlite3.connect(home / "bridge.sqlite3") as connection:
        history = [
            row[0]
            for table in ("runs", "run_actions")
            for row in connection.execute(f"SELECT record FROM {table}")
        ]
        cases = [row[0] for row in connection.execute("SELECT document FROM cases")]
    assert len(history) > 50
    for text in PERSONAL:
        assert not any(text in record for record in history), text
    assert any("+44 20 7946" in case for case in cases)  # the case, the business record, keeps them


def test_an_intake_run_with_a_secure_trigger_can_still_be_resubmitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "resubmit"
    assert cli(home, "intake", RESPONSES) == 0
    with SqliteRunStore(home / "bridge.sqlite3") as runs:
        (first, *_) = [r for r in runs.find(key="3") if r.flow == "notification-intake"]
    assert first.trigger == {"secure": "***redacted***"}
    assert cli(home, "runs", "resubmit", first.run_id) == 0
    with SqliteRunStore(home / "bridge.sqlite3") as runs:
        replays = [r for r in runs.find(key="3") if r.replay_of == first.run_id]
    assert len(replays) == 1
    assert replays[0].actions["open_case"].deduplicated  # the case was opened once: its result reused
