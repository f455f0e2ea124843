"""Ctrl-C during a command, as a terminal sends it (SIGINT to the command's whole process group, its
worker processes too): one line saying it stopped and what stays queued, status 130, no traceback, and
nothing acknowledged lost: a later ``drain`` handles what was left, the message being run included."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flows.bootstrap import bootstrap
from flows.cli import LocalQueue, main
from flows.settings import PROJECT_ROOT, SAMPLES, Settings

RESPONSES = 300
NOW = "2026-11-23T14:00:00Z"


def test_ctrl_c_during_an_intake_says_what_stays_queued_and_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = json.loads((SAMPLES / "forms" / "responses.json").read_text())[0]
    ids = [str(20_000 + n) for n in range(RESPONSES)]
    responses = tmp_path / "many.json"
    responses.write_text(json.dumps([{**sample, "responseId": response_id} for response_id in ids]))
    home = tmp_path / "home"
    env = {name: value for name, value in os.environ.items() if not name.startswith("BRIDGE_")}
    command = [sys.executable, "-m", "flows", "--home", str(home), "--now", NOW, "intake", str(responses)]
    with subprocess.Popen(
        [*command, "--workers", "2"], cwd=PROJECT_ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stderr is not None
        seen = []
        for line in process.stderr:  # interrupted once runs are under way, the queue far from empty
            seen.append(line)
            if len(seen) == 60:
                os.killpg(process.pid, signal.SIGINT)
                break
        err = "".join(seen) + process.stderr.read()
        assert process.wait(timeout=60) == 130, err
    assert "Traceback" not in err and "Process cpl-bridge-worker" not in err, err
    stopped = re.fullmatch(
        r"stopped \(Ctrl-C\): (\d+) message\(s\) stay queued, for the next command \(or 'drain'\) to handle",
        err.strip().splitlines()[-1],
    )
    assert stopped, err
    with bootstrap(Settings(home=home)) as app:
        queue = app.parts.queue
        assert isinstance(queue, LocalQueue)
        assert int(stopped.group(1)) == queue.pending() > 0  # one leased to the stopped process too
    assert main(["--home", str(home), "--now", NOW, "drain"]) == 0
    with bootstrap(Settings(home=home)) as app:
        assert [response_id for response_id in ids if app.cases.get(response_id) is None] == []
        queue = app.parts.queue
        assert isinstance(queue, LocalQueue) and queue.pending() == 0
