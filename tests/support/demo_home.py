"""The sample scenario's home (``python -m flows demo``), built once per test session and copied per test."""

from __future__ import annotations

import atexit
import contextlib
import io
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from flows.cli import main

DEMO_ENDS = datetime(2026, 11, 27, 15, tzinfo=UTC)
"""The demo's clock at its last step (its hourly check, three days after the intake)."""
_built: Path | None = None


def demo_home(target: Path) -> Path:
    """A copy of the demo's home at ``target``: 8 cases, case 4 needing attention."""
    global _built
    if _built is None:
        made = Path(tempfile.mkdtemp(prefix="demo-home-"))
        atexit.register(shutil.rmtree, made, ignore_errors=True)  # built once per test process
        folder = made / "home"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["--home", str(folder), "demo"]) == 0
        _built = folder
    shutil.copytree(_built, target)
    return target
