"""Which process holds a queue lease, told well enough to say later whether it is still running.

A process id alone is not enough: ids are reused (a worker that died may leave its id to a new
process), and a home shared by containers holds ids of other pid namespaces, where asking the kernel
about them here answers for some other process or for none. So an owner is written as
``<space>/<pid>/<start>``: the space is this boot and pid namespace, the start the process's start
time in clock ticks since boot (``/proc/<pid>/stat``). Without ``/proc`` (macOS, Windows) space and
start are empty and the id is asked about as it is.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

PROC = Path("/proc")


def current_owner() -> str:
    """This process, as a lease's owner."""
    return f"{_space()}/{os.getpid()}/{_start_time(os.getpid())}"


def owner_is_gone(owner: str) -> bool:
    """Whether the process that wrote ``owner`` has surely ended. An owner of another boot or pid
    namespace is never taken for gone: nothing here can tell, and its lease times out on its own."""
    space, _, rest = owner.partition("/")
    pid_text, _, started = rest.partition("/")
    if space != _space() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return started != _start_time(pid)  # this id, from an earlier process that had it
    if not pid_is_running(pid):
        return True
    return bool(started) and _start_time(pid) != started  # the id reused by a later process


def pid_is_running(pid: int) -> bool:
    """Whether some process of this namespace has the id ``pid`` now."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


@cache
def _space() -> str:
    try:
        boot = (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        namespace = os.stat(PROC / "self" / "ns" / "pid").st_ino
    except OSError:
        return ""
    return f"{boot}:{namespace}"


def _start_time(pid: int) -> str:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return ""
    # The command name, in parentheses, may hold spaces and parentheses: fields count from the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]  # field 22 of proc(5)'s stat, "starttime": these fields start at field 3
