"""Several worker processes draining the embedded work queue together, as Azure Functions scales out.

The queue is a table in the home's SQLite file, so a worker is just another process opening the same
home: it builds its own bridge with ``bootstrap`` and takes messages until none is left. Each lease is
taken in its own write transaction (one message, one worker), a case is saved under its version, and
every side effect is keyed, so the workers need no other coordination. Part of the composition root.

Processes, not threads: the engine's work is Python, and the GIL would let only one thread run it.
On Linux, with no other thread running, a worker is forked from this process (``_forked``): it starts
with every module imported, where a fresh interpreter spends most of a second of CPU on imports while
this process works alone (see ARCHITECTURE.md for what it changed). The child lets go of its copy of
the parent's database at once (``adapters.embedded.sqlite``, at every fork: closed without unlocking
anything), and opens its own bridge; it ends with ``os._exit`` (``multiprocessing``'s fork start), so
nothing else of the parent's is closed or flushed twice. Elsewhere, or with another thread running
(a fork copies only the calling thread: a lock another one held stays held in the child), each worker
is a fresh interpreter running ``python -m flows.workers``, given the settings on its standard input:
multiprocessing's ``spawn`` re-imports the caller's main script, which a script without a ``__main__``
guard does not survive.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from flows.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from flows.bootstrap import BridgeApp
    from flows.engine.runs import RunRecord
    from flows.queue_message import Message

    Progress = Callable[[Message, RunRecord], None]

IDLE_WAIT = 0.005  # seconds between looks at a queue whose last messages other workers hold
ORPHAN_CHECK_EVERY = 0.25  # seconds between checks, while waiting, for leases of processes gone


@runtime_checkable
class SharedQueue(Protocol):
    """A work queue other processes can drain too: it can tell how much is not yet acknowledged, and
    give back at once what a process that died was holding."""

    def pending(self) -> int: ...

    def release_orphaned_leases(self) -> None: ...


class Worker(Protocol):
    """A worker process as the drain watches it: ``subprocess.Popen`` or a forked ``_Forked``."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class WorkerFailed(RuntimeError):
    """A worker process ended with an error (its traceback went to standard error)."""


def drain_with_workers(
    app: BridgeApp, workers: int, *, now: datetime | None = None, on_progress: Progress | None = None
) -> None:
    """Drain ``app``'s queue with ``workers`` processes in all, this one among them.

    ``now``: the fixed clock the app was built with (a replay's ``--now``), or None for real time;
    the other workers run on the same clock. ``on_progress``: what the other workers call after each
    run, as ``app`` does. It is sent to them by name, with the settings, so it must be a function
    defined at the top of an importable module (not in a script run as ``__main__``, nor a lambda).
    Returns when every message, including the events the flows emitted meanwhile, is acknowledged.
    """
    queue = app.parts.queue
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if workers == 1 or not isinstance(queue, SharedQueue) or queue.pending() < 2:
        app.bridge.drain()
        return
    # Everything a worker is given is made before any worker starts: a failure then starts none.
    given = _given(app.settings, now, on_progress)
    forks = forks_workers()
    others: list[Worker] = [
        _forked(app.settings, now, on_progress) if forks else _started(given) for _ in range(1, workers)
    ]
    try:
        _drain_until_acknowledged(app.bridge.drain, queue, others)
    except BaseException:
        # The messages this process holds stay leased while it lives: the others would wait for
        # them until the visibility timeout. Stopped now, they leave theirs to the next drain.
        for process in others:
            process.terminate()
        raise
    finally:
        for process in others:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    failed = [str(process.pid) for process in others if process.returncode != 0]
    if failed:
        raise WorkerFailed(f"worker process {', '.join(failed)} failed; its error is above")


def _given(settings: Settings, now: datetime | None, on_progress: Progress | None) -> bytes:
    """What a worker reads on its standard input. Pickled, not JSON: secrets (``SecretStr``) would be
    written out masked. The pipe is the child's alone."""
    if on_progress is not None:
        module, name = getattr(on_progress, "__module__", None), getattr(on_progress, "__qualname__", "")
        if module in (None, "__main__") or not name.isidentifier():
            raise ValueError(
                f"on_progress must be a function defined at the top of an importable module, so that "
                f"worker processes can import it by name; {module}.{name or on_progress!r} is not"
            )
    return pickle.dumps((settings, now, on_progress))


def forks_workers() -> bool:
    """Whether workers are forked from this process rather than started as fresh interpreters (see
    the module's docstring): on Linux, when no other thread runs here."""
    return sys.platform == "linux" and threading.active_count() == 1


class _Forked:
    """A forked worker, watched as a ``subprocess.Popen`` is."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None  # started in ``_forked``
        return pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode  # reaps the child once it has ended

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
        return code

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()


def _forked(settings: Settings, now: datetime | None, on_progress: Progress | None) -> _Forked:
    # The child's exit code is 1 when ``_work`` raises, its traceback on standard error, as a fresh
    # interpreter's would be.
    process = multiprocessing.get_context("fork").Process(
        target=_work, args=(settings, now, on_progress), name="cpl-bridge-worker"
    )
    process.start()
    return _Forked(process)


def _started(given: bytes) -> subprocess.Popen[bytes]:
    # Same interpreter and working directory (relative settings such as the home mean the same), and
    # the project importable however the parent was started (``bench/engine.py`` from elsewhere).
    search_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.workers"],
        stdin=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": search_path},
    )
    assert process.stdin is not None
    process.stdin.write(given)
    process.stdin.close()
    return process


def _drain_until_acknowledged(drain: Callable[[], object], queue: SharedQueue, others: list[Worker]) -> None:
    """Drain, then wait for what other workers hold: their flows may still emit events to handle.
    A worker that died holding a message gives it back here (else it waits out the visibility timeout)."""
    checked = time.monotonic()
    while True:
        drain()
        if queue.pending() == 0:
            return
        # Every worker is polled, so that one that died is reaped: until then it is a zombie, which
        # looks alive to the check for leases of processes gone.
        polled = [process.poll() for process in others]
        ended = others and all(code is not None for code in polled)
        if ended and any(process.returncode for process in others):
            queue.release_orphaned_leases()  # what the failed worker held, if it died holding it
            drain()
            return
        if time.monotonic() - checked >= ORPHAN_CHECK_EVERY:
            queue.release_orphaned_leases()
            checked = time.monotonic()
        time.sleep(IDLE_WAIT)


def _work(settings: Settings, now: datetime | None, on_progress: Progress | None) -> None:
    """A worker process: its own bridge on the same home, draining until nothing is pending.

    Ctrl-C in a terminal reaches every process of the command: the workers leave it to the parent,
    which stops them (``terminate``) and says what stays queued; each printed a traceback before."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from flows.bootstrap import bootstrap

    clock = (lambda: now) if now is not None else None
    with bootstrap(settings, clock=clock, on_progress=on_progress) as app:
        queue = app.parts.queue
        assert isinstance(queue, SharedQueue)
        _drain_until_acknowledged(app.bridge.drain, queue, [])


if __name__ == "__main__":
    # Only the parent process writes to this pipe (``_started``): nothing untrusted is unpickled.
    _settings, _now, _on_progress = pickle.load(sys.stdin.buffer)  # noqa: S301
    _work(_settings, _now, _on_progress)
