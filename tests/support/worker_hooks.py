"""``on_progress`` functions for worker tests: sent to worker processes by name, so they live in an
importable module. Each acts once, in one process, chosen by an ``O_EXCL`` marker file."""

from __future__ import annotations

import os
import time
from typing import Any

MARKER = "CPL_BRIDGE_TEST_MARKER"  # the marker file's path, set by the test
PARENT = "CPL_BRIDGE_TEST_PARENT"  # the draining parent's pid
WHO_RAN = "CPL_BRIDGE_TEST_WHO_RAN"  # a file each process adds a line to for each run it finishes
WAIT_FOR_A_DEATH = 60.0  # seconds (for a death, or a worker's first run); far below the tests' guards


def _first_time() -> bool:
    try:
        os.close(os.open(os.environ[MARKER], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def a_worker_dies_once(message: Any, run: Any) -> None:
    """A worker process (not the parent) dies after a run, holding a message's lease (the next
    message's, taken with the acknowledgement of the run's own).

    The parent waits after its first run until a worker has died: it could otherwise drain every
    message before any worker process has started (they take a second to import), and none would die.
    """
    if os.getpid() != int(os.environ[PARENT]):
        if _first_time():
            os._exit(3)
        return
    deadline = time.monotonic() + WAIT_FOR_A_DEATH
    while not os.path.exists(os.environ[MARKER]) and time.monotonic() < deadline:
        time.sleep(0.05)


def the_parent_fails_once(message: Any, run: Any) -> None:
    """The parent's own drain raises after a run, holding its message's lease."""
    if os.getpid() == int(os.environ[PARENT]) and _first_time():
        raise RuntimeError("the parent's drain failed")


def say_who_ran(message: Any, run: Any) -> None:
    """A line for each run: the process's pid and how it started (``forked`` by multiprocessing from
    the draining parent, ``fresh`` otherwise: the parent itself, or a new interpreter).

    The parent waits after its first run until a worker has finished one: it could otherwise drain
    every message before a worker process took any."""
    import multiprocessing

    how = "forked" if multiprocessing.parent_process() is not None else "fresh"
    path = os.environ[WHO_RAN]
    with open(path, "a", encoding="utf-8") as lines:
        lines.write(f"{os.getpid()} {how}\n")
    if os.getpid() != int(os.environ[PARENT]):
        return
    deadline = time.monotonic() + WAIT_FOR_A_DEATH
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8") as lines:
            if any(int(line.split()[0]) != os.getpid() for line in lines):
                return
        time.sleep(0.05)
