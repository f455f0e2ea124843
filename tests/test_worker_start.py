"""How worker processes start (``flows.workers``): forked, with every module imported, when this
process runs no other thread on Linux; fresh interpreters otherwise. Either way they share the work,
and the parent's own connection to the home goes on after them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.embedded.sqlite import BridgeDatabase
from flows.bootstrap import bootstrap
from flows.domain.case import CaseState
from flows.domain.cpl import CplPublication
from flows.queue_message import form_response_message
from flows.settings import PROJECT_ROOT, Settings
from flows.workers import drain_with_workers, forks_workers
from tests.support import worker_hooks

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
CASES = 30

# Run in a new interpreter: pytest's own process may run other threads (a plugin's, a test's).
FORKING_PARENT = f"""
import os, sys
from datetime import datetime
from pathlib import Path
sys.path.insert(0, {str(PROJECT_ROOT)!r})
from bench.engine import synthetic
from flows.bootstrap import bootstrap
from flows.domain.cpl import CplPublication
from flows.queue_message import form_response_message
from flows.settings import Settings
from flows.workers import drain_with_workers, forks_workers
from tests.support import worker_hooks

now = datetime.fromisoformat({NOW.isoformat()!r})
os.environ[worker_hooks.PARENT] = str(os.getpid())
made = [synthetic(index) for index in range({CASES} + 1)]
entries = tuple(entry for _, emergency, previous in made for entry in (previous, emergency))
publication = CplPublication(source_sha256="fork", source_name="fork.xlsx", entries=entries)
settings, hook = Settings(home=Path(sys.argv[1])), worker_hooks.say_who_ran
with bootstrap(settings, clock=lambda: now, on_progress=hook) as app:
    app.publications.add(publication, fetched_at=now, source="test")
    for response, _, _ in made[:-1]:
        app.bridge.submit(form_response_message(response))
    print(os.getpid(), forks_workers())
    drain_with_workers(app, 2, now=now, on_progress=hook)
    # The parent's connection, open while its workers were forked, writes and reads on.
    app.bridge.submit(form_response_message(made[-1][0]))
    app.bridge.drain()
    print(sum(1 for case in app.cases.list() if case.state.value == "loaded"))
"""


def _who_ran(path: Path, parent: int) -> Counter[str]:
    """How the processes other than ``parent`` that finished runs had started, one count per run."""
    lines = [line.split() for line in path.read_text().splitlines()]
    return Counter(how for pid, how in lines if int(pid) != parent)


def test_workers_are_forked_when_nothing_else_runs_here_and_the_parent_goes_on(tmp_path: Path) -> None:
    home, who_ran = tmp_path / "home", tmp_path / "who-ran"
    environment = {**os.environ, worker_hooks.WHO_RAN: str(who_ran)}
    done = subprocess.run(
        [sys.executable, "-c", FORKING_PARENT, str(home)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    parent, forks, loaded = done.stdout.split()
    assert (forks, loaded) == ("True", str(CASES + 1))
    workers = _who_ran(who_ran, int(parent))
    assert workers["forked"] >= 1 and workers["fresh"] == 0
    with sqlite3.connect(home / "bridge.sqlite3") as database:
        assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_workers_are_new_interpreters_while_another_thread_runs_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork copies only the calling thread; what another thread held (a lock, a half-written
    buffer) would stay so in the child. Workers then start as ``python -m flows.workers``."""
    from bench.engine import synthetic
    from flows.domain.cpl import CplPublication

    who_ran = tmp_path / "who-ran"
    monkeypatch.setenv(worker_hooks.WHO_RAN, str(who_ran))
    monkeypatch.setenv(worker_hooks.PARENT, str(os.getpid()))
    made = [synthetic(index) for index in range(CASES)]
    entries = tuple(entry for _, emergency, previous in made for entry in (previous, emergency))
    publication = CplPublication(source_sha256="spawn", source_name="spawn.xlsx", entries=entries)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert not forks_workers()
        settings = Settings(home=tmp_path / "home")
        with bootstrap(settings, clock=lambda: NOW, on_progress=worker_hooks.say_who_ran) as app:
            app.publications.add(publication, fetched_at=NOW, source="test")
            for response, _, _ in made:
                app.bridge.submit(form_response_message(response))
            drain_with_workers(app, 2, now=NOW, on_progress=worker_hooks.say_who_ran)
            loaded = [case for case in app.cases.list() if case.state is CaseState.LOADED]
    finally:
        stop.set()
        other.join()
    assert len(loaded) == CASES
    workers = _who_ran(who_ran, os.getpid())
    assert workers["fresh"] >= 1 and workers["forked"] == 0


def _loaded_cases(database: Path) -> int:
    connection = sqlite3.connect(database, timeout=10)
    try:
        (value,) = connection.execute("SELECT count(*) FROM cases WHERE state = 'loaded'").fetchone()
    except sqlite3.OperationalError:  # the table is not made yet
        return 0
    finally:
        connection.close()
    return int(value)


def test_forked_workers_outliving_a_killed_intake_lose_nothing_beside_the_next_drain(tmp_path: Path) -> None:
    """The parent is killed (SIGKILL) while its forked worker drains; the worker goes on beside the
    `drain` an operator runs next, as a new interpreter would: with locks of its own, neither's
    commits lost, each response handled once. (A worker still holding the parent's copy held no lock
    of its own, and lost its commits to the drain's clean-up of the write-ahead log.)"""
    from bench.engine import synthetic

    home, count = tmp_path / "home", 80
    made = [synthetic(index) for index in range(count)]
    responses = tmp_path / "responses.json"
    responses.write_text(json.dumps([response for response, _, _ in made]))
    entries = tuple(entry for _, emergency, previous in made for entry in (previous, emergency))
    with bootstrap(Settings(home=home), clock=lambda: NOW) as app:  # the CPL the responses name
        app.publications.add(
            CplPublication(source_sha256="k", source_name="k.xlsx", entries=entries),
            fetched_at=NOW,
            source="test",
        )
    command = [sys.executable, "-m", "flows", "--home", str(home), "--now", NOW.isoformat()]
    intake = subprocess.Popen(
        [*command, "intake", str(responses), "--workers", "2"],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    database = home / "bridge.sqlite3"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and intake.poll() is None and _loaded_cases(database) < 10:
            time.sleep(0.01)
        os.kill(intake.pid, signal.SIGKILL)
    finally:
        intake.wait()
    assert intake.returncode == -9, "the intake finished before it could be killed: raise the count"
    assert _loaded_cases(database) < count
    drained = subprocess.run(
        [*command, "drain"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False
    )  # fmt: skip  # a worker keeping the killed parent's writer lock made it wait forever
    assert drained.returncode == 0, drained.stderr
    # The orphaned worker ends once nothing is pending; the home is then no one else's.
    deadline = time.monotonic() + 120
    with BridgeDatabase(database) as check:
        while True:
            with check.alone() as alone:
                if alone:
                    break
            assert time.monotonic() < deadline, "the forked worker never ended"
            time.sleep(0.05)
    with bootstrap(Settings(home=home), clock=lambda: NOW) as app:
        app.bridge.drain()  # what the orphan held when the drain ran, given back by its end
        cases = app.cases.list()
    assert len(cases) == count and all(case.state is CaseState.LOADED for case in cases)
    sent = Counter(path.name.rsplit("-", 1)[0] for path in (home / "outbox" / "mail").glob("*.eml"))
    assert len(sent) == 2 * count and set(sent.values()) == {1}
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (rows,) = connection.execute("SELECT count(*) FROM inventory").fetchone()
    assert rows == count
