"""npm packages the tests need (Azurite, Mermaid), installed once into a cache folder outside the
repo, under a file lock so that parallel test runs install once and the others wait."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Held by one process at a time; released when the block ends."""
    with lock.open("a+b") as handle:
        if sys.platform == "win32":
            import msvcrt

            deadline = time.monotonic() + 900
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        else:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def npm_install(npm: str, folder: Path, packages: Sequence[str], *, present: Path | None = None) -> bool:
    """Install ``packages`` into ``folder`` unless its stamp lists them (and ``present`` exists);
    True if npm ran. A failed install fails the test run with npm's own words."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "installed.txt"
    wanted = " ".join(packages)
    with exclusive(folder / "install.lock"):
        if (
            stamp.exists()
            and stamp.read_text(encoding="utf-8") == wanted
            and (present is None or present.exists())
        ):
            return False
        command = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", *packages]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        stamp.write_text(wanted, encoding="utf-8")
        return True
