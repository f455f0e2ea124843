"""A loopback token service for tests: what azure-identity's real credential classes ask for a token.

One stdlib HTTP server on 127.0.0.1 plays both kinds of token service the bridge meets: a managed-identity
endpoint (App Service / Functions, reached through ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``; or the
instance metadata service, through ``AZURE_POD_IDENTITY_AUTHORITY_HOST``) and, over TLS with a
self-signed certificate, an Entra ID authority (its OpenID configuration and token endpoint) for
``ClientSecretCredential``. Every token request gets the next scripted ``Answer`` (a token when none is
left: ``token``) and is counted in ``hits``.
"""

from __future__ import annotations

import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from tests.support.certificates import self_signed
from tests.support.loopback import Loopback

TENANT = "tenant-1"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] | str
    retry_after: int | None = None


BUSY = Answer(503, {"statusCode": 503, "message": "The identity endpoint is temporarily unavailable"})
AADSTS_INVALID_SECRET = Answer(
    401,
    {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.",
        "error_codes": [7000215],
    },
)


@dataclass
class TokenServer:
    """Use as a context manager; ``tls_dir`` (a folder for the certificate) makes it an HTTPS authority."""

    tls_dir: Path | None = None
    token: str = "token-1"
    answers: deque[Answer] = field(default_factory=deque)
    hits: list[str] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)  # of each request, parsed

    def __enter__(self) -> TokenServer:
        context = None
        if self.tls_dir is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*_self_signed(self.tls_dir))
        self._loopback = Loopback(_Handler, tls=context, tokens=self).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loopback.stop()

    @property
    def ca_file(self) -> str:
        """The certificate to trust (``connection_verify``) to reach the HTTPS authority."""
        assert self.tls_dir is not None
        return str(self.tls_dir / "token-server.crt")

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_dir else 'http'}://127.0.0.1:{self._loopback.port}"

    def answer(self, path: str, resource: str) -> Answer:
        if path.endswith("/.well-known/openid-configuration"):
            base = f"{self.url}/{TENANT}"
            return Answer(
                200,
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "issuer": f"{base}/v2.0",
                },
            )
        self.hits.append(path)
        if self.answers:
            return self.answers.popleft()
        expires = int(time.time()) + 3600
        token = {
            "access_token": self.token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "expires_on": expires,
        }
        return Answer(200, token | {"resource": resource})  # App Service names the resource (scope) too


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        resource = query.get("resource", [""])[0]
        cast(Any, self.server).tokens.queries.append(query)
        answer = cast(Any, self.server).tokens.answer(split.path, resource)
        body = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        content = body.encode()
        self.send_response(answer.status)
        kind = "application/json" if isinstance(answer.body, dict) else "text/html"
        self.send_header("Content-Type", kind)
        if answer.retry_after is not None:
            self.send_header("Retry-After", str(answer.retry_after))
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid a day, and its key: two PEM files in ``folder``."""
    made = self_signed("127.0.0.1", for_loopback=True)
    certificate_path, key_path = folder / "token-server.crt", folder / "token-server.key"
    certificate_path.write_bytes(made.certificate)
    key_path.write_bytes(made.key)
    return certificate_path, key_path
