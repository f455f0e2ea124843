"""The console's command-line side: ``cases decide`` (a decision without a browser) and ``serve`` (the
console and the HTTP endpoints on loopback, as a process)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flows.bootstrap import BridgeApp, bootstrap
from flows.cli import main
from flows.console.serve import make_server
from flows.settings import PROJECT_ROOT, SAMPLES, Settings
from tests.support.demo_home import demo_home

NOW = "2026-11-27T16:00:00Z"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return demo_home(tmp_path / "home")


def case_state(home: Path, response_id: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["--home", str(home), "cases", "--json"]) == 0
    (case,) = [c for c in json.loads(capsys.readouterr().out) if c["response_id"] == response_id]
    return str(case["status"])


def test_accept_from_the_command_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--home", str(home), "--now", NOW, "cases", "decide", "4", "--accept",
            "--reason", "formatting only", "--operator", "Ann Operator"]  # fmt: skip
    assert main(argv) == 0
    assert "loaded" in capsys.readouterr().out
    assert case_state(home, "4", capsys) == "loaded"
    assert len(list((home / "outbox" / "mail").glob("mail_loaded_4_*.eml"))) == 1


def test_reject_from_the_command_line_tells_the_supplier(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--home", str(home), "--now", NOW, "cases", "decide", "4", "--reject", "--reason", "wrong image"]
    assert main(argv) == 0
    assert case_state(home, "4", capsys) == "rejected"
    assert len(list((home / "outbox" / "mail").glob("mail_rejected-by-operator_4-*.eml"))) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["4", "--accept"], "case 4: a reason is needed to accept a case"),
        (
            ["1", "--reject", "--reason", "x"],
            "only a case that needs attention can be rejected; this one is loaded",
        ),
        (["404", "--recheck"], "no case for response '404'"),
        (
            ["4", "--accept", "--reason", "x", "--operator", " "],
            "decision: operator: String should have at least",
        ),
    ],
)
def test_a_decision_that_cannot_be_made_is_one_clear_line(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(["--home", str(home), "cases", "decide", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture
def served(home: Path) -> Iterator[tuple[str, str]]:
    env = {"BRIDGE_GRAPH_CLIENT_STATE": "local-client-state", "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(
        [sys.executable, "-m", "flows", "--home", str(home), "serve", "--port", "0"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/console/\?code=(\S+)", line)
        assert found, line + (process.stderr.read() if process.poll() is not None and process.stderr else "")
        yield found.group(1), found.group(2)
    finally:
        process.terminate()
        process.communicate(timeout=10)  # waits, and closes the pipes


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def refused(request: urllib.request.Request | str) -> urllib.error.HTTPError:
    """The error answer to a request, closed (an unclosed one leaks its socket into a later test)."""
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(request, timeout=30)
    caught.value.close()
    return caught.value


def signed_in_cookie(base: str, key: str) -> str:
    answer = refused(f"{base}/console/?code={key}")
    assert answer.code == 303  # the redirect that drops the key from the address
    return answer.headers["Set-Cookie"].split(";")[0]


def test_serve_opens_the_console_with_its_printed_key(served: tuple[str, str]) -> None:
    base, key = served
    assert refused(f"{base}/console/cases").code == 401
    cookie = signed_in_cookie(base, key)
    request = urllib.request.Request(f"{base}/console/cases", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as page:
        assert b"<h1>Cases</h1>" in page.read()


def test_serve_takes_a_pushed_form_response_with_the_function_key(
    served: tuple[str, str], home: Path
) -> None:
    base, key = served
    response = json.loads((SAMPLES / "forms" / "responses.json").read_text())[0]
    response["responseId"] = "9001"
    body = json.dumps(response).encode()
    headers = {"Content-Type": "application/json"}
    without_key = urllib.request.Request(f"{base}/api/forms/responses", data=body, headers=headers)
    assert refused(without_key).code == 401
    with_key = urllib.request.Request(f"{base}/api/forms/responses?code={key}", data=body, headers=headers)
    with urllib.request.urlopen(with_key, timeout=30) as accepted:
        assert accepted.status == 202
    cookie = signed_in_cookie(base, key)
    page = urllib.request.Request(f"{base}/console/cases/9001", headers={"Cookie": cookie})
    with urllib.request.urlopen(page, timeout=10) as case:
        assert b"Case 9001" in case.read()  # queued, then run by the local worker before the answer


def test_serve_answers_every_request_to_each_endpoint_not_only_the_first(
    served: tuple[str, str], home: Path
) -> None:
    """The Functions app's functions were looked up per request, and ``get_functions`` refuses a second
    call: the first POST was answered, every later one lost with its connection."""
    base, key = served
    sample = json.loads((SAMPLES / "forms" / "responses.json").read_text())[0]
    with httpx.Client(base_url=base, params={"code": key}, timeout=30) as client:
        for response_id in ("9101", "9102", "9103"):
            pushed = client.post("/api/forms/responses", json={**sample, "responseId": response_id})
            assert pushed.status_code == 202, pushed.text
        for token in ("first", "second"):
            checked = client.post("/api/graph/notifications", params={"validationToken": token})
            assert (checked.status_code, checked.text) == (200, token)
    with bootstrap(Settings(home=home)) as app:
        assert all(app.cases.get(response_id) for response_id in ("9101", "9102", "9103"))


def test_serve_on_a_port_in_use_names_the_address(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--home", str(home), "serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}: another program listens there" in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[BridgeApp, str]]:
    with bootstrap(Settings(home=demo_home(tmp_path / "home"), console_key="a-key-for-tests-only")) as app:
        server = make_server(app, host="127.0.0.1", port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield app, f"127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


def test_serve_refuses_a_negative_body_length_at_once(running: tuple[BridgeApp, str]) -> None:
    """Read as "to the end of the stream", it held the one server thread and passed the size limit."""
    _, address = running
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"POST /console/cases/4/decide HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
        answer = raw.recv(200)
    assert answer.startswith(b"HTTP/1.0 400")
    assert httpx.get(f"http://{address}/console/cases", timeout=10).status_code == 401  # still serving


def test_serve_opens_a_case_whose_id_is_percent_encoded(running: tuple[BridgeApp, str]) -> None:
    app, address = running
    case = app.cases.get("4")
    assert case is not None
    app.cases.add(case.model_copy(update={"response_id": "Ä1", "version": 0}))
    with httpx.Client(base_url=f"http://{address}", timeout=10) as client:
        client.get("/console/", params={"code": "a-key-for-tests-only"})
        page = client.get("/console/cases/%C3%841")
    assert page.status_code == 200 and "Case Ä1" in page.text
