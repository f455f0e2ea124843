"""How worker processes start (``flows.workers``): forked, with every module imported, when this
process runs no other thread on Linux; fresh interpreters otherwise. Either way they share the work,
and the parent's own connection to the home goes on after them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.bootstrap import bootstrap
from flows.domain.case import CaseState
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
