"""Azurite, the Azure Storage emulator, for the tests: a pytest plugin with session fixtures.

Load it with ``pytest_plugins = ["tests.azurite"]`` in a test module. On first use it installs Azurite
from npm into ``<system temp dir>/cpl-bridge-azurite`` (or ``$CPL_BRIDGE_AZURITE_DIR``), outside the
repository, under a file lock (parallel runs, pytest-xdist workers) and with a stamp naming the
version, so later sessions skip npm. It then starts Azurite once per session on free loopback ports
(port 0, read back from its start-up lines), in memory (``--inMemoryPersistence``: nothing on disk),
with ``--disableTelemetry`` (Azurite otherwise reports usage over the network), ``--skipApiVersionCheck``
(the Python SDKs may be newer than the emulator), ``--loose`` and ``--silent``; waits until every
service answers HTTP; and stops it when the session ends. Without Node.js and npm the tests fail with
a message saying so: they are never skipped.

``azurite`` gives the connection string; ``azurite_server`` the ports and the install/start timings,
which are also shown in the terminal summary (and by ``pytest --durations``).
"""

from __future__ import annotations

import http.client
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tests.support.npm import npm_install

# 3.36 and later declare Node 21/22; CI has Node 20.
PACKAGE = "azurite@3.35.0"
FOLDER = Path(os.environ.get("CPL_BRIDGE_AZURITE_DIR") or Path(tempfile.gettempdir()) / "cpl-bridge-azurite")
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key, published in its documentation: not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT = 60.0  # seconds
Service = Literal["blob", "queue", "table"]
_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at http://127\.0\.0\.1:(\d+)"
)
_SERVICES: dict[str, Service] = {"Blob": "blob", "Queue": "queue", "Table": "table"}
_TIMINGS: list[str] = []


@dataclass(frozen=True)
class AzuriteServer:
    """A running Azurite: its ports and how long it took to get it going."""

    ports: dict[Service, int]
    install_seconds: float
    installed_now: bool
    start_seconds: float

    account: str = ACCOUNT
    account_key: str = field(default=ACCOUNT_KEY, repr=False)

    def url(self, service: Service) -> str:
        return f"http://127.0.0.1:{self.ports[service]}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.url('blob')};QueueEndpoint={self.url('queue')};"
            f"TableEndpoint={self.url('table')};"
        )


def install(npm: str, folder: Path) -> bool:
    """Install Azurite into ``folder`` unless it is there already; True if npm ran."""
    return npm_install(npm, folder, [PACKAGE], present=script(folder))


def script(folder: Path) -> Path:
    return folder / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"


def start(node: str, folder: Path, workdir: Path) -> tuple[subprocess.Popen[str], dict[Service, int]]:
    """Start Azurite on free loopback ports; its ports once every service says it is listening."""
    options = ["--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]
    for service in ("blob", "queue", "table"):
        options += [f"--{service}Host", "127.0.0.1", f"--{service}Port", "0"]
    process = subprocess.Popen(
        [node, str(script(folder)), *options],
        cwd=workdir,  # in memory, but Azurite may still leave a debug file where it runs
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(process, lines), daemon=True).start()
    ports: dict[Service, int] = {}
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    while len(ports) < 3:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = ""
        if not line:  # closed output (it exited) or no line in time
            stop(process)
            pytest.fail(f"Azurite did not start (exit {process.poll()}):\n{''.join(seen)}", pytrace=False)
        seen.append(line)
        if found := _LISTENING.search(line):
            ports[_SERVICES[found[1]]] = int(found[2])
    for service, port in ports.items():
        _wait_until_it_answers(service, port, deadline)
    return process, ports


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    """Read Azurite's output to its end (so the pipe never fills), passing each line on."""
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)
    lines.put("")
    process.stdout.close()


def _wait_until_it_answers(service: str, port: int, deadline: float) -> None:
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", f"/{ACCOUNT}?comp=list")
            connection.getresponse().read()  # any HTTP answer (400, 403) means it is serving
            return
        except OSError as error:
            if time.monotonic() > deadline:
                pytest.fail(f"Azurite's {service} service on port {port} does not answer: {error}")
            time.sleep(0.1)
        finally:
            connection.close()


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "Node.js and npm are needed to run Azurite, the Azure Storage emulator, for the Azure "
            "Storage tests (CI has Node 20): install them and run the tests again",
            pytrace=False,
        )
    began = time.perf_counter()
    installed_now = install(npm, FOLDER)
    installed = time.perf_counter()
    process, ports = start(node, FOLDER, tmp_path_factory.mktemp("azurite"))
    server = AzuriteServer(ports, installed - began, installed_now, time.perf_counter() - installed)
    how = "npm install" if installed_now else "already installed"
    _TIMINGS.append(
        f"{PACKAGE}: {how} in {server.install_seconds:.1f} s, started in {server.start_seconds:.2f} s"
    )
    try:
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="session")
def azurite(azurite_server: AzuriteServer) -> str:
    """The connection string of the session's Azurite."""
    return azurite_server.connection_string


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for timing in _TIMINGS:
        terminalreporter.write_line(timing)
