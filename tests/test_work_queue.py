"""The embedded work queue (a SQLite table) and several worker processes draining it.

The queue must behave as the Azure Storage queue does: nothing queued is lost when a process dies,
a leased message is hidden from other workers until its visibility timeout, a message that keeps
failing or cannot be read goes to the poison table. Worker processes are real processes on a real
file; the clock is injected only to step over visibility timeouts without waiting.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.embedded.idempotency import SqliteIdempotencyStore
from adapters.embedded.processes import current_owner
from adapters.embedded.queue import SqliteWorkQueue
from adapters.embedded.runs import SqliteRunStore
from adapters.embedded.sqlite import BridgeDatabase
from flows.bootstrap import bootstrap
from flows.cli import main
from flows.domain.case import CaseState
from flows.engine.loader import load_flow
from flows.engine.registry import ActionContext, ConnectorRegistry
from flows.engine.runner import Engine
from flows.engine.runs import RunRecord, RunStatus
from flows.queue_message import Message, form_response_message
from flows.service import Bridge
from flows.settings import PROJECT_ROOT, SAMPLES, Settings
from flows.workers import WorkerFailed, drain_with_workers
from tests.support import worker_hooks

NOW = datetime.fromisoformat("2026-11-24T09:05:00+00:00")
ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def event(number: int) -> Message:
    return Message(type="event", event="case.opened", body={"n": number})


@pytest.fixture
def database(tmp_path: Path) -> Any:
    with BridgeDatabase(tmp_path / "bridge.sqlite3") as db:
        yield db


def test_messages_come_out_in_order_and_once_acknowledged_are_gone(database: BridgeDatabase) -> None:
    queue = SqliteWorkQueue(database)
    for number in range(3):
        queue.put(event(number))
    taken = []
    while (message := queue.get()) is not None:
        taken.append(message.body["n"])
        queue.done(message)
    assert taken == [0, 1, 2]
    assert queue.pending() == 0


def test_done_then_get_acknowledges_and_takes_the_next_in_one_commit(database: BridgeDatabase) -> None:
    queue = SqliteWorkQueue(database)
    for number in range(3):
        queue.put(event(number))
    commits: list[str] = []
    database._connection.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    taken = [queue.get()]
    while (message := taken[-1]) is not None:
        taken.append(queue.done_then_get(message))
    assert [message.body["n"] for message in taken if message is not None] == [0, 1, 2]
    assert len(commits) == 4  # the first get, then one per acknowledgement with the next message
    assert queue.pending() == 0


def test_done_then_get_leaves_a_lease_another_worker_took_over(database: BridgeDatabase) -> None:
    clock = Clock()
    worker_a = SqliteWorkQueue(database, visibility_timeout=30, clock=clock)
    worker_b = SqliteWorkQueue(database, visibility_timeout=30, clock=clock)
    worker_a.put(event(1))
    taken = worker_a.get()
    assert taken is not None
    clock.now += 31
    again = worker_b.get()
    assert again is not None
    assert worker_a.done_then_get(taken) is None  # nothing else visible; b's lease is b's
    assert worker_b.pending() == 1
    worker_b.done(again)
    assert worker_b.pending() == 0


def test_done_then_get_moves_an_unreadable_next_message_to_poison_and_takes_the_one_after(
    database: BridgeDatabase,
) -> None:
    queue = SqliteWorkQueue(database)
    heard: list[dict[str, Any]] = []
    queue.on_poison = heard.append
    queue.put(event(1))
    first = queue.get()
    assert first is not None
    with database.write() as connection:
        connection.execute(
            "INSERT INTO work_queue (message_id, message, visible_at) VALUES ('bad', '{\"type\": 5}', 0)"
        )
    queue.put(event(2))
    following = queue.done_then_get(first)
    assert following is not None and following.body == {"n": 2}
    assert [message_id for message_id, _ in queue.poisoned()] == ["bad"]
    assert [alert["type"] for alert in heard] == ["unreadable"]


def test_a_poisoning_whose_alert_fails_is_logged_and_the_next_message_taken(
    database: BridgeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    queue = SqliteWorkQueue(database)

    def channel_down(alert: dict[str, Any]) -> None:
        raise ConnectionError("webhook unreachable")

    queue.on_poison = channel_down
    with database.write() as connection:
        connection.execute(
            "INSERT INTO work_queue (message_id, message, visible_at) VALUES ('bad', '{\"type\": 5}', 0)"
        )
    queue.put(event(2))
    following = queue.get()
    assert following is not None and following.body == {"n": 2}
    assert [message_id for message_id, _ in queue.poisoned()] == ["bad"]
    [logged] = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert (
        "message queue position 1 was given up on (unreadable" in logged
        and "ConnectionError: webhook unreachable" in logged
    )


def test_a_queued_message_outlives_the_process_that_queued_it(tmp_path: Path) -> None:
    file = tmp_path / "bridge.sqlite3"
    with BridgeDatabase(file) as first:
        SqliteWorkQueue(first).put(event(7))  # then the process "dies": nothing drained it
    with BridgeDatabase(file) as second:
        message = SqliteWorkQueue(second).get()
    assert message is not None and message.body == {"n": 7}


def test_a_leased_message_is_hidden_until_its_visibility_timeout_then_delivered_again(
    database: BridgeDatabase,
) -> None:
    clock = Clock()
    worker_a = SqliteWorkQueue(database, visibility_timeout=30, clock=clock)
    worker_b = SqliteWorkQueue(database, visibility_timeout=30, clock=clock)
    worker_a.put(event(1))
    taken = worker_a.get()
    assert taken is not None
    assert worker_b.get() is None  # leased to a
    assert worker_b.pending() == 1
    clock.now += 31  # a did not acknowledge in time
    again = worker_b.get()
    assert again is not None and again.message_id == taken.message_id
    worker_a.done(taken)  # a's lease is stale: b's delivery must survive it
    assert worker_b.pending() == 1
    worker_b.done(again)
    assert worker_b.pending() == 0


def test_a_message_delivered_too_often_or_unreadable_goes_to_poison(database: BridgeDatabase) -> None:
    clock = Clock()
    queue = SqliteWorkQueue(database, visibility_timeout=1, max_dequeue_count=3, clock=clock)
    first = event(1)
    queue.put(first)
    for _ in range(3):
        assert queue.get() is not None  # the worker crashes each time: no done
        clock.now += 2
    with database.write() as connection:
        connection.execute(
            "INSERT INTO work_queue (message_id, message, visible_at) VALUES ('bad', '{\"type\": 5}', 0)"
        )
    queue.put(event(2))
    message = queue.get()
    assert message is not None and message.body == {"n": 2}  # the two bad ones were moved aside
    reasons = dict(queue.poisoned())
    assert set(reasons) == {first.message_id, "bad"}
    assert "delivered 3 times" in reasons[first.message_id]
    assert "unreadable" in reasons["bad"]
    # Kept with the deliveries they had, not counting the one that found them bad.
    assert [kept.dequeue_count for kept in queue.poisoned_messages()] == [3, 0]
    assert queue.pending() == 1  # the good one, leased: poisoned messages are not pending work


def test_leases_of_a_process_that_died_are_released_when_the_queue_is_opened(tmp_path: Path) -> None:
    file = tmp_path / "bridge.sqlite3"
    with BridgeDatabase(file) as db:
        SqliteWorkQueue(db).put(event(1))
    taker = (
        "import sys, os\n"
        "from adapters.embedded.queue import SqliteWorkQueue\n"
        "from adapters.embedded.sqlite import BridgeDatabase\n"
        "queue = SqliteWorkQueue(BridgeDatabase(sys.argv[1]))\n"
        "assert queue.get() is not None\n"
        "os._exit(0)  # dies holding the lease\n"
    )
    subprocess.run([sys.executable, "-c", taker, str(file)], cwd=ROOT, check=True, timeout=60)
    with BridgeDatabase(file) as db:
        message = SqliteWorkQueue(db).get()  # well within the 300 s visibility timeout
    assert message is not None and message.body == {"n": 1}


def a_pid_that_is_gone() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    return int(finished.stdout)


def lease_owned_by(database: BridgeDatabase, owner: str, pid: int) -> None:
    """One message queued and leased, then its lease made to read as ``owner``'s (``pid`` for the
    version-1 column)."""
    queue = SqliteWorkQueue(database)
    queue.put(event(1))
    assert queue.get() is not None
    with database.write() as connection:
        connection.execute("UPDATE work_queue SET owner = ?, owner_pid = ?", (owner, pid))


def test_a_lease_of_another_pid_namespace_is_left_to_time_out(database: BridgeDatabase) -> None:
    """A home shared by two containers: a process id of the other one means nothing here."""
    gone = a_pid_that_is_gone()
    lease_owned_by(database, f"another-boot:4026531836/{gone}/1234", gone)
    assert SqliteWorkQueue(database).get() is None  # opening released nothing


def test_a_lease_of_an_earlier_process_with_this_id_is_released(database: BridgeDatabase) -> None:
    """Process ids are reused: the lease of a dead worker whose id this process now has is not ours."""
    space = current_owner().split("/")[0]
    lease_owned_by(database, f"{space}/{os.getpid()}/1", os.getpid())
    message = SqliteWorkQueue(database).get()
    assert message is not None and message.body == {"n": 1}


def test_a_lease_of_a_live_process_stays_and_one_of_a_dead_one_of_this_space_goes(
    database: BridgeDatabase,
) -> None:
    live = current_owner()
    lease_owned_by(database, live, os.getpid())
    assert SqliteWorkQueue(database).get() is None
    space, gone = live.split("/")[0], a_pid_that_is_gone()
    with database.write() as connection:
        connection.execute("UPDATE work_queue SET owner = ?", (f"{space}/{gone}/99",))
    assert SqliteWorkQueue(database).get() is not None


def test_a_version_1_queue_gains_owners_and_its_dead_leases_are_released(tmp_path: Path) -> None:
    file = tmp_path / "bridge.sqlite3"
    with sqlite3.connect(file) as connection:
        connection.executescript(
            """
            CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL,
                                          applied_at TEXT NOT NULL);
            INSERT INTO schema_versions VALUES ('work_queue', 1, '2026-11-01T00:00:00Z');
            CREATE TABLE work_queue (position INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,
                message TEXT NOT NULL, visible_at REAL NOT NULL, dequeue_count INTEGER NOT NULL DEFAULT 0,
                lease TEXT, owner_pid INTEGER);
            """
        )
        connection.execute(
            "INSERT INTO work_queue (message_id, message, visible_at, dequeue_count, lease, owner_pid) "
            "VALUES ('m1', ?, 9e99, 1, 'lease', ?)",
            (event(1).model_dump_json(), a_pid_that_is_gone()),
        )
    connection.close()
    with BridgeDatabase(file) as database:
        message = SqliteWorkQueue(database).get()
        assert database.schema_version("work_queue") == 2
    assert message is not None and message.body == {"n": 1}


def test_writers_queue_on_the_lock_beside_the_file(tmp_path: Path, database: BridgeDatabase) -> None:
    """The advisory lock is what writers wait on (woken at once), before SQLite's polling busy handler."""
    queue = SqliteWorkQueue(database)
    lock = (tmp_path / "bridge.sqlite3.writer").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)  # as another process's writer would hold it
    written = threading.Event()

    def write() -> None:
        queue.put(event(1))
        written.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert not written.wait(0.3)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    assert written.wait(10)
    writer.join()
    assert queue.pending() == 1


def _responses(count: int) -> list[dict[str, Any]]:
    from bench.engine import synthetic

    return [synthetic(index)[0] for index in range(count)]


def _publication(count: int) -> Any:
    from bench.engine import synthetic
    from flows.domain.cpl import CplPublication

    made = [synthetic(index) for index in range(count)]
    entries = tuple(entry for _, emergency, previous in made for entry in (previous, emergency))
    return CplPublication(source_sha256="workers", source_name="workers.xlsx", entries=entries)


def test_two_worker_processes_drain_one_home_each_case_handled_once(tmp_path: Path) -> None:
    count = 40
    responses = _responses(count)
    with bootstrap(Settings(home=tmp_path), clock=lambda: NOW) as app:
        app.publications.add(_publication(count), fetched_at=NOW, source="test")
        for response in responses + responses[:10]:  # a quarter delivered twice
            app.bridge.submit(form_response_message(response))
        drain_with_workers(app, 2, now=NOW)
        assert app.parts.queue.pending() == 0  # type: ignore[attr-defined]
        cases = app.cases.list()
        rows = app.inventory.all()
    assert len(cases) == count and all(case.state is CaseState.LOADED for case in cases)
    # The other worker ran on the given clock too: every moment in every timeline is NOW.
    assert {t.at for case in cases for t in case.timeline} == {NOW}
    assert len(rows) == count
    mails = Counter(path.name.rsplit("-", 1)[0] for path in (tmp_path / "outbox" / "mail").glob("*.eml"))
    # An acknowledgement and a confirmation each, and nothing twice.
    assert set(mails.values()) == {1} and len(mails) == 2 * count


def test_intake_with_workers_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    responses = tmp_path / "responses.json"
    responses.write_text((SAMPLES / "forms" / "responses.json").read_text())
    command = ["--home", str(home), "--now", NOW.isoformat(), "intake", str(responses), "--workers", "2"]
    assert main(command) == 0
    assert main(["--home", str(home), "cases", "--json"]) == 0
    cases = json.loads(capsys.readouterr().out)
    submitted = {str(r["responseId"]) for r in json.loads(responses.read_text())}
    assert {case["response_id"] for case in cases} == submitted


def test_every_worker_reports_its_runs_as_they_finish(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """``--workers 2`` shows one progress line per run, whichever process ran it (standard error).
    Enough responses that the second worker, started while the first is busy, takes a share."""
    home = tmp_path / "home"
    responses = tmp_path / "responses.json"
    responses.write_text(json.dumps(_responses(60)))
    command = ["--home", str(home), "--now", NOW.isoformat(), "intake", str(responses), "--workers", "2"]
    assert main(command) == 0
    shown = [line.split()[-1] for line in capfd.readouterr().err.splitlines() if line.startswith("  ")]
    with bootstrap(Settings(home=home), clock=lambda: NOW) as app:
        runs = app.bridge.engine.runs.find(limit=1000)
    assert len(runs) >= 60
    assert sorted(shown) == sorted(run.run_id[:12] for run in runs)


def test_workers_run_when_the_command_line_module_itself_is_the_main_script(tmp_path: Path) -> None:
    """``python -m flows.cli`` makes the progress printer's module ``__main__`` in the parent; the
    workers are sent it by a name they can import."""
    responses = tmp_path / "responses.json"
    responses.write_text(json.dumps(_responses(30)))
    command = [sys.executable, "-m", "flows.cli", "--home", str(tmp_path / "home"), "--now", NOW.isoformat()]
    result = subprocess.run(
        [*command, "intake", str(responses), "--workers", "2"],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(" Succeeded ") >= 30


def test_a_progress_function_workers_cannot_import_is_refused_before_any_worker_starts(
    tmp_path: Path,
) -> None:
    with bootstrap(Settings(home=tmp_path), clock=lambda: NOW) as app:
        for response in _responses(4):
            app.bridge.submit(form_response_message(response))
        with pytest.raises(ValueError, match="on_progress must be a function defined at the top"):
            drain_with_workers(app, 2, now=NOW, on_progress=lambda message, run: None)
        assert app.parts.queue.pending() == 4  # type: ignore[attr-defined]  # nothing was taken


def test_workers_must_be_a_positive_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--home", str(tmp_path), "intake", "x.json", "--workers", "0"])
    assert "not a positive whole number: '0'" in capsys.readouterr().err


def test_operators_hear_of_a_message_given_up_on(tmp_path: Path) -> None:
    """As the poison-queue trigger does in Azure: a card naming the message, never its body."""
    with bootstrap(Settings(home=tmp_path), clock=lambda: NOW) as app:
        queue = app.parts.queue
        assert isinstance(queue, SqliteWorkQueue)
        message = Message(type="http", flow="secas-sync", body={"location": "secret-looking-body"})
        app.bridge.submit(message)
        with queue.database.write() as connection:  # as after five deliveries that crashed the worker
            connection.execute("UPDATE work_queue SET dequeue_count = 5")
        assert queue.get() is None
    cards = [json.loads(path.read_text()) for path in (tmp_path / "outbox" / "teams").glob("*.json")]
    assert len(cards) == 1
    text = json.dumps(cards[0])
    assert "secas-sync" in text and message.message_id in text
    assert "secret-looking-body" not in text


def test_a_message_poisoned_again_after_being_put_back_is_told_again(tmp_path: Path) -> None:
    with bootstrap(Settings(home=tmp_path), clock=lambda: NOW) as app:
        queue = app.parts.queue
        assert isinstance(queue, SqliteWorkQueue)
        app.bridge.submit(Message(type="http", flow="secas-sync", body={"location": "nowhere"}))
        for expected_cards in (1, 2):
            with queue.database.write() as connection:  # as after five deliveries that crashed the worker
                connection.execute("UPDATE work_queue SET dequeue_count = 5")
            assert queue.get() is None
            assert len(list((tmp_path / "outbox" / "teams").glob("*.json"))) == expected_cards
            assert queue.requeue_poisoned() == 1  # the operator fixed the cause (they thought)


def test_workers_start_whatever_directory_the_caller_runs_in(tmp_path: Path) -> None:
    """As ``bench/engine.py`` run from elsewhere: the project is on the caller's path, not in its folder."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from flows.bootstrap import bootstrap\n"
        "from flows.queue_message import form_response_message\n"
        "from flows.settings import SAMPLES, Settings\n"
        "from flows.workers import drain_with_workers\n"
        "with bootstrap(Settings(home=Path('home'))) as app:\n"
        "    for r in json.loads((SAMPLES / 'forms' / 'responses.json').read_text()):\n"
        "        app.bridge.submit(form_response_message(r))\n"
        "    drain_with_workers(app, 2)\n"
        "    print(len(app.cases.list()), app.parts.queue.pending())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    responses = json.loads((SAMPLES / "forms" / "responses.json").read_text())
    assert done.stdout.split() == [str(len({r["responseId"] for r in responses})), "0"]


def test_a_killed_intake_loses_nothing_the_next_drain_finishes_it(tmp_path: Path) -> None:
    """The command is killed (SIGKILL: no clean-up at all) part-way through its responses; `drain`
    on the same home handles the rest, each response once."""
    home = tmp_path / "home"
    count = 60
    responses = tmp_path / "responses.json"
    responses.write_text(json.dumps(_responses(count)))
    command = [sys.executable, "-m", "flows", "--home", str(home), "--now", NOW.isoformat()]
    intake = subprocess.Popen(
        [*command, "intake", str(responses)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        database = home / "bridge.sqlite3"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and intake.poll() is None:
            if database.exists() and _count(database, "SELECT count(*) FROM cases") >= 5:
                break
            time.sleep(0.02)
        intake.kill()
    finally:
        intake.wait()
    assert intake.returncode == -9, "the intake finished before it could be killed: raise the count"
    opened = _count(home / "bridge.sqlite3", "SELECT count(*) FROM cases")
    assert 5 <= opened < count
    done = subprocess.run(
        [*command, "drain"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert " 0 left" in done.stderr
    with bootstrap(Settings(home=home), clock=lambda: NOW) as app:
        cases = app.cases.list()
    assert sorted(case.response_id for case in cases) == sorted(
        str(r["responseId"]) for r in _responses(count)
    )
    acknowledgements = Counter(
        path.name.rsplit("-", 1)[0] for path in (home / "outbox" / "mail").glob("mail_acknowledge_*.eml")
    )
    assert len(acknowledgements) == count and set(acknowledgements.values()) == {1}
    # every message the killed command or the drain sent is journaled, its file holding the kept bytes
    connection = sqlite3.connect(home / "bridge.sqlite3")
    try:
        rows = connection.execute("SELECT folder, name, content FROM outbox_messages").fetchall()
    finally:
        connection.close()
    files = {(path.parent.name, path.name): path.read_bytes() for path in (home / "outbox").rglob("*.*")}
    assert files == {(folder, name): bytes(content) for folder, name, content in rows}


def _count(database: Path, query: str) -> int:
    connection = sqlite3.connect(database, timeout=10)
    try:
        (value,) = connection.execute(query).fetchone()
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        connection.close()
    return int(value)


def test_drain_reports_poison_and_retries_it_once_the_cause_is_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    sync = Message(
        type="http", flow="secas-sync", body={"location": str(SAMPLES / "cpl" / "cpl-2026-11-20.xlsx")}
    )
    with BridgeDatabase.in_home(home) as db:
        queue = SqliteWorkQueue(db)
        queue.put(sync)
        with db.write() as connection:  # as after five deliveries that crashed the worker
            connection.execute("UPDATE work_queue SET dequeue_count = 5")
    command = ["--home", str(home), "--now", NOW.isoformat(), "drain"]
    assert main(command) == 0
    assert "1 message(s) were waiting; 0 left; 1 in poison" in capsys.readouterr().err
    assert main([*command, "--retry-poisoned"]) == 0
    assert "1 poisoned message(s) put back" in capsys.readouterr().err
    with bootstrap(Settings(home=home), clock=lambda: NOW) as app:
        assert app.publications.latest() is not None  # the sync ran this time
        left = app.parts.queue
        assert isinstance(left, SqliteWorkQueue)
        assert left.poisoned() == [] and left.pending() == 0


def test_poisoned_lists_the_poison_table_and_requeues_by_id_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What each poisoned message was (never its body), and the ones named put back; an id not kept
    stops the command with one line and status 2 before anything is put back."""
    home = tmp_path / "home"
    response = json.loads((SAMPLES / "forms" / "responses.json").read_text())[0]
    intake = form_response_message(response)
    sync = Message(
        type="http", flow="secas-sync", body={"location": str(SAMPLES / "cpl" / "cpl-2026-11-20.xlsx")}
    )
    with BridgeDatabase.in_home(home) as db:
        queue = SqliteWorkQueue(db)
        queue.put(intake)
        queue.put(sync)
        with db.write() as connection:  # as after five deliveries that crashed the worker
            connection.execute("UPDATE work_queue SET dequeue_count = 5")
    command = ["--home", str(home), "--now", NOW.isoformat()]
    assert main([*command, "drain"]) == 0
    capsys.readouterr()
    assert main([*command, "poisoned"]) == 0
    listed = capsys.readouterr()
    for shown in (intake.message_id, "form_response", sync.message_id, "secas-sync", "delivered 5 times"):
        assert shown in listed.out
    assert "2 poisoned message(s) kept" in listed.err
    assert response["responder"] not in listed.out + listed.err  # a supplier's contact: never shown

    assert main([*command, "poisoned", "--requeue", sync.message_id, "not-a-kept-id"]) == 2
    refused = capsys.readouterr().err
    assert refused.strip().splitlines() == [
        "error: no poisoned message kept under not-a-kept-id (list them with 'poisoned')"
    ]
    with BridgeDatabase.in_home(home) as db:
        assert len(SqliteWorkQueue(db).poisoned()) == 2  # nothing put back

    assert main([*command, "poisoned", "--requeue", sync.message_id]) == 0
    assert f"1 poisoned message(s) put back ({sync.message_id})" in capsys.readouterr().err
    assert main([*command, "drain"]) == 0
    with bootstrap(Settings(home=home), clock=lambda: NOW) as app:
        assert app.publications.latest() is not None  # the sync ran this time
        left = app.parts.queue
        assert isinstance(left, SqliteWorkQueue)
        [kept] = left.poisoned_messages()
        assert (kept.message_id, kept.type, kept.flow, kept.dequeue_count) == (
            intake.message_id, "form_response", None, 5,
        )  # fmt: skip
    assert main([*command, "poisoned", "--forget", intake.message_id, "not-a-kept-id"]) == 2
    assert "no poisoned message kept under not-a-kept-id" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one or the other
        main([*command, "poisoned", "--forget", intake.message_id, "--requeue"])
    capsys.readouterr()
    with BridgeDatabase.in_home(home) as db:
        assert len(SqliteWorkQueue(db).poisoned()) == 1  # nothing deleted

    assert main([*command, "poisoned", "--requeue"]) == 0  # every one left
    assert "1 poisoned message(s) put back; the next 'drain' handles them" in capsys.readouterr().err
    assert main([*command, "drain"]) == 0
    with bootstrap(Settings(home=home), clock=lambda: NOW) as app:
        assert app.cases.get(str(response["responseId"])) is not None
        assert app.parts.queue.poisoned_messages() == []  # type: ignore[attr-defined]


def test_a_poisoned_message_is_forgotten_by_id_and_not_put_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    first, second = event(1), event(2)
    with BridgeDatabase.in_home(home) as db:
        queue = SqliteWorkQueue(db)
        queue.put(first)
        queue.put(second)
        with db.write() as connection:
            connection.execute("UPDATE work_queue SET dequeue_count = 5")
        assert queue.get() is None  # both given up on
    command = ["--home", str(home), "--now", NOW.isoformat()]
    assert main([*command, "poisoned", "--forget", first.message_id]) == 0
    assert f"1 poisoned message(s) deleted ({first.message_id})" in capsys.readouterr().err
    with BridgeDatabase.in_home(home) as db:
        queue = SqliteWorkQueue(db)
        assert [message_id for message_id, _ in queue.poisoned()] == [second.message_id]
        assert queue.pending() == 0  # deleted, not put back


def test_a_drain_of_exactly_its_limit_ends_normally(tmp_path: Path) -> None:
    with bootstrap(Settings(home=tmp_path / "home"), clock=lambda: NOW) as app:
        for number in range(2):
            app.bridge.submit(Message(type="event", event="nobody.listens", body={"n": number}))
        assert app.bridge.drain(limit=2) == []  # no flow listens: no runs, and no error either
        with pytest.raises(ValueError, match="at least 1"):
            app.bridge.drain(limit=0)


def test_a_drain_stops_at_its_limit_with_the_rest_still_queued(tmp_path: Path) -> None:
    """Against a flow that emits for ever: the limit ends the drain, and nothing is acknowledged unhandled."""
    with bootstrap(Settings(home=tmp_path / "home"), clock=lambda: NOW) as app:
        for number in range(3):
            app.bridge.submit(Message(type="event", event="nobody.listens", body={"n": number}))
        with pytest.raises(RuntimeError, match="not empty after 2 messages"):
            app.bridge.drain(limit=2)
        queue = app.parts.queue
        assert isinstance(queue, SqliteWorkQueue)
        assert queue.pending() == 1
        left = SqliteWorkQueue(queue.database).get()  # not leased: the next drain takes it at once
        assert left is not None and left.body == {"n": 2}


def test_the_engine_bench_measures_file_creation_in_its_own_folder(tmp_path: Path) -> None:
    from bench.engine import file_create_us

    assert file_create_us(tmp_path, files=20) > 0
    assert len(list((tmp_path / "file-create-probe").iterdir())) == 20


def test_an_event_emitted_before_a_crash_runs_its_flows_once(tmp_path: Path) -> None:
    """The process dies after ``events.emit`` left its event and while the engine records the
    action: the event goes with the record, not written (on one SQLite file they are one
    transaction); the redelivery emits it again, and the flow it triggers runs once."""
    home = tmp_path / "home"
    dies_before_the_record = (
        "import os, sys\n"
        "from adapters.embedded.idempotency import SqliteIdempotencyStore\n"
        "from flows.bootstrap import bootstrap\n"
        "from flows.queue_message import form_response_message\n"
        "from flows.settings import Settings\n"
        "from tests.test_work_queue import NOW, _publication, _responses\n"
        "real_put = SqliteIdempotencyStore.put\n"
        "def put(self, key, result):\n"
        "    if key.endswith('check_cpl'):\n"
        "        os._exit(9)  # in the transaction of the event, the key and the record\n"
        "    return real_put(self, key, result)\n"
        "SqliteIdempotencyStore.put = put\n"
        "with bootstrap(Settings(home=__import__('pathlib').Path(sys.argv[1])), clock=lambda: NOW) as app:\n"
        "    app.publications.add(_publication(1), fetched_at=NOW, source='test')\n"
        "    app.bridge.submit(form_response_message(_responses(1)[0]))\n"
        "    app.bridge.drain()\n"
    )
    died = subprocess.run([sys.executable, "-c", dies_before_the_record, str(home)], cwd=ROOT, timeout=120)
    assert died.returncode == 9
    with bootstrap(Settings(home=home), clock=lambda: NOW) as app:
        queue = app.parts.queue
        assert isinstance(queue, SqliteWorkQueue) and queue.pending() == 1  # the response alone
        app.bridge.drain()
        loads = app.bridge.engine.runs.find(flow="emergency-load")
        assert len(loads) == 1 and loads[0].status.value == "Succeeded"
        assert len(app.inventory.all()) == 1


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(worker_hooks.MARKER, str(tmp_path / "acted"))
    monkeypatch.setenv(worker_hooks.PARENT, str(os.getpid()))


def _drain_in_background(app: Any, workers: int, on_progress: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def drain() -> None:
        try:
            drain_with_workers(app, workers, now=NOW, on_progress=on_progress)
            outcome["error"] = None
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.usefixtures("hooks")
def test_a_worker_dying_with_a_message_does_not_stall_the_others(tmp_path: Path) -> None:
    """Its message is given back as soon as it is gone, not after the 300 s visibility timeout."""
    dies = worker_hooks.a_worker_dies_once
    # The parent's own bridge gets the hook too: there it waits for a worker's death, without which it
    # could drain all 40 messages before any worker process had started (one in six runs here).
    with bootstrap(Settings(home=tmp_path / "home"), clock=lambda: NOW, on_progress=dies) as app:
        app.publications.add(_publication(40), fetched_at=NOW, source="test")
        for response in _responses(40):
            app.bridge.submit(form_response_message(response))
        thread, outcome = _drain_in_background(app, 3, dies)
        thread.join(timeout=120)  # a guard against hanging, far below the visibility timeout
        assert not thread.is_alive(), "the drain waited for the dead worker's lease"
        assert isinstance(outcome["error"], WorkerFailed)
        loaded = [case for case in app.cases.list() if case.state is CaseState.LOADED]
        assert len(loaded) == 40 and len(app.inventory.all()) == 40


@pytest.mark.usefixtures("hooks")
def test_a_failing_parent_stops_its_workers_at_once_and_says_why(tmp_path: Path) -> None:
    failing = worker_hooks.the_parent_fails_once
    with bootstrap(Settings(home=tmp_path / "home"), clock=lambda: NOW, on_progress=failing) as app:
        app.publications.add(_publication(40), fetched_at=NOW, source="test")
        for response in _responses(40):
            app.bridge.submit(form_response_message(response))
        started = time.monotonic()
        thread, outcome = _drain_in_background(app, 2, failing)
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert str(outcome["error"]) == "the parent's drain failed"
        assert time.monotonic() - started < 50  # the workers were not waited on for a minute


class EndCrash(BaseException):
    """The process dying while a run's end is written: nothing in the engine or the bridge catches it."""


class RunsDyingAtAnEnd(SqliteRunStore):
    """Dies once, in ``finish`` of run ``dies_at``, after its rows are written and before anything
    commits them."""

    dies_at = "m1-second"

    def finish(self, run_id: str, status: RunStatus, **given: Any) -> None:
        super().finish(run_id, status, **given)
        if run_id == self.dies_at:
            self.dies_at = ""
            raise EndCrash


TWO_FLOWS_ON_ONE_EVENT = {
    "first": "name: first\ntriggers: [{type: event, event: ping}]\nactions: {a: {use: t.note}}\n",
    "second": (
        "name: second\ntriggers: [{type: event, event: ping}]\n"
        "actions: {b1: {use: t.note}, b2: {use: t.note}}\n"
    ),
    # An event emitted by an action, by one with a time-out, and the flow it triggers.
    "emits": "name: emits\ntriggers: [{type: event, event: go}]\nactions: {e: {use: t.emit}}\n",
    "emits-timed": (
        "name: emits-timed\ntriggers: [{type: event, event: go-timed}]\n"
        "actions: {e: {use: t.emit, timeout: PT30S}}\n"
    ),
    "hears": "name: hears\ntriggers: [{type: event, event: pong}]\nactions: {h: {use: t.note}}\n",
}


def _bridge_on(
    tmp_path: Path, database: BridgeDatabase, runs: SqliteRunStore, queue: SqliteWorkQueue, **given: Any
) -> tuple[Bridge, list[str]]:
    """A bridge over the stores on ``database``, running the two flows above; the list holds the
    actions' calls."""
    calls: list[str] = []
    registry = ConnectorRegistry()

    def note(context: ActionContext) -> dict[str, Any]:
        calls.append(f"{context.run_id}.{context.action}")
        return {}

    registry.register("t.note", note, side_effect=False)
    made: list[Bridge] = []

    def emit(context: ActionContext) -> dict[str, Any]:
        return {"id": made[0].emit("pong", {}, once_per=context.idempotency_key).message_id}

    registry.register("t.emit", emit, side_effect=True)
    flows = {}
    for name, text in TWO_FLOWS_ON_ONE_EVENT.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        flows[name] = load_flow(tmp_path / f"{name}.yaml")
    engine = Engine(registry, runs, SqliteIdempotencyStore(database), clock=lambda: NOW)
    made.append(Bridge(flows, engine, queue, clock=lambda: NOW, **given))
    return made[0], calls


def _status(bridge: Bridge, run_id: str) -> RunStatus | None:
    run = bridge.engine.runs.get(run_id)
    return None if run is None else run.status


def test_a_message_is_acknowledged_in_the_transaction_that_writes_its_last_run_s_end(
    tmp_path: Path, database: BridgeDatabase
) -> None:
    """Both or neither: the process dying while the end is written leaves the message to deliver
    again (the run still running), and that delivery ends the run. The run's last record goes with
    its end: that action runs again (as after a crash before any record; a side effect would be
    found by its key), the others do not."""
    clock = Clock()
    queue = SqliteWorkQueue(database, visibility_timeout=30, clock=clock)
    bridge, calls = _bridge_on(tmp_path, database, RunsDyingAtAnEnd(database), queue)
    queue.put(Message(message_id="m1", type="event", event="ping", body={}))
    statements: list[str] = []
    database._connection.set_trace_callback(statements.append)
    with pytest.raises(EndCrash):
        bridge.drain()
    database._connection.set_trace_callback(None)
    # The first run's end was written (and committed) before the second run started; the second
    # run's end was to go with the acknowledgement, and went nowhere.
    assert [_status(bridge, run_id) for run_id in ["m1-first", "m1-second"]] == [
        RunStatus.SUCCEEDED,
        RunStatus.RUNNING,
    ]
    assert queue.pending() == 1
    ends = [i for i, s in enumerate(statements) if s.startswith("UPDATE runs")]
    assert len(ends) == 2
    # The second end was written in a transaction that never committed (nor acknowledged anything).
    begun = max(i for i, s in enumerate(statements[: ends[1]]) if s == "BEGIN IMMEDIATE")
    assert "COMMIT" not in statements[begun:]
    assert not any(s.startswith("DELETE FROM work_queue") for s in statements[begun:])

    clock.now += 31  # the lease runs out: delivered again
    statements.clear()
    database._connection.set_trace_callback(statements.append)
    assert bridge.drain() and queue.pending() == 0
    database._connection.set_trace_callback(None)
    # The last record, the end and the acknowledgement: one transaction, in that order. The header is
    # read from the file first: the one the store had remembered went with the rolled-back end.
    (end,) = [i for i, s in enumerate(statements) if s.startswith("UPDATE runs")]
    begun = max(i for i, s in enumerate(statements[:end]) if s == "BEGIN IMMEDIATE")
    committed = statements.index("COMMIT", end)
    written = [s for s in statements[begun + 1 : committed] if not s.startswith(("SAVEPOINT", "RELEASE"))]
    assert [" ".join(s.split()[:3]) for s in written][:4] == [
        "INSERT INTO run_actions",
        "SELECT record FROM",
        "UPDATE runs SET",
        "DELETE FROM work_queue",
    ]
    assert [_status(bridge, run_id) for run_id in ["m1-first", "m1-second"]] == [
        RunStatus.SUCCEEDED,
        RunStatus.SUCCEEDED,
    ]
    assert calls == ["m1-first.a", "m1-second.b1", "m1-second.b2", "m1-second.b2"]


def test_progress_is_told_of_a_run_once_its_end_is_written_and_its_message_acknowledged(
    tmp_path: Path, database: BridgeDatabase
) -> None:
    queue = SqliteWorkQueue(database)
    seen: list[tuple[str, RunStatus | None, int]] = []

    def progress(message: Message, run: RunRecord) -> None:
        stored = runs.get(run.run_id)
        seen.append((run.run_id, stored.status if stored else None, queue.pending()))

    runs = SqliteRunStore(database)
    bridge, _ = _bridge_on(tmp_path, database, runs, queue, on_progress=progress)
    queue.put(Message(message_id="m1", type="event", event="ping", body={}))
    queue.put(Message(message_id="m2", type="event", event="ping", body={}))
    bridge.drain()
    # Each run heard of ended in the history; the second of a message once the message is gone.
    assert seen == [
        ("m1-first", RunStatus.SUCCEEDED, 2),
        ("m1-second", RunStatus.SUCCEEDED, 1),
        ("m2-first", RunStatus.SUCCEEDED, 1),
        ("m2-second", RunStatus.SUCCEEDED, 0),
    ]
    assert bridge.handle(Message(message_id="m3", type="event", event="ping", body={}))[-1].status is (
        RunStatus.SUCCEEDED
    )
    assert [run_id for run_id, *_ in seen[4:]] == ["m3-first", "m3-second"]


def _transactions(statements: list[str]) -> list[list[str]]:
    """The traced statements as transactions (a statement outside one is one alone), each statement
    cut to its first words."""
    found: list[list[str]] = []
    current: list[str] | None = None
    for statement in statements:
        words = " ".join(statement.split()[:3])
        if statement == "BEGIN IMMEDIATE":
            current = []
        elif statement == "COMMIT":
            assert current is not None
            found.append(current)
            current = None
        elif current is not None:
            current.append(words)
        else:
            found.append([words])
    return found


@pytest.mark.parametrize(("event", "together"), [("go", True), ("go-timed", False)])
def test_an_event_an_action_emits_is_queued_with_its_record_and_key(
    tmp_path: Path, database: BridgeDatabase, event: str, together: bool
) -> None:
    """One transaction: the event, the action's idempotency key and its record (with the run's start
    and end, and the acknowledgement: the action is the run's first and last), and the event is taken
    in that transaction and heard in the same drain. An action with a time-out queues it at once: its
    call, abandoned, could go on after the record."""
    queue = SqliteWorkQueue(database)
    bridge, calls = _bridge_on(tmp_path, database, SqliteRunStore(database), queue)
    queue.put(Message(message_id="m1", type="event", event=event, body={}))
    statements: list[str] = []
    database._connection.set_trace_callback(statements.append)
    bridge.drain()
    database._connection.set_trace_callback(None)
    assert [call.split("-")[-1] for call in calls] == ["hears.h"]  # the event was heard, once
    assert queue.pending() == 0
    record = next(t for t in _transactions(statements) if "INSERT INTO run_actions" in t)
    written = [statement for statement in record if not statement.startswith(("SAVEPOINT", "RELEASE"))]
    if together:
        assert written == [
            "INSERT OR IGNORE",  # the run's start
            "INSERT INTO work_queue",  # the event
            "INSERT OR IGNORE",  # the key
            "INSERT INTO run_actions",  # the record
            "UPDATE runs SET",  # the run's end
            "DELETE FROM work_queue",  # the acknowledgement
            "UPDATE work_queue SET",  # the next lease: the event
        ]
    else:
        assert "INSERT INTO work_queue" not in written
        assert ["INSERT INTO work_queue"] in _transactions(statements)  # committed alone, before


def test_an_event_emitted_twice_under_one_key_runs_its_flows_once(
    tmp_path: Path, database: BridgeDatabase
) -> None:
    """Emitted again after a crash (or from outside a flow, a form posted twice), an event has the
    same message id: the flows it triggers find their runs (ids made from it) done."""
    queue = SqliteWorkQueue(database)
    bridge, calls = _bridge_on(tmp_path, database, SqliteRunStore(database), queue)
    first = bridge.emit("pong", {}, once_per="decision/1")
    again = bridge.emit("pong", {}, once_per="decision/1")
    assert first.message_id == again.message_id and queue.pending() == 2
    assert len(bridge.drain()) == 2 and queue.pending() == 0
    assert calls == [f"{first.message_id}-hears.h"]
