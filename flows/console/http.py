"""The console's own request and response: what any HTTP host can build and send."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from flows.errors import BadInput

MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True)
class ConsoleRequest:
    method: str
    path: str
    """The path below the console's root, such as ``/cases/4`` (``/`` for the root)."""
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names in lower case."""
    body: bytes = b""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def cookie(self, name: str) -> str:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.header("cookie"))
        except Exception:  # a malformed Cookie header is no cookie, not an error page
            return ""
        morsel = jar.get(name)
        return morsel.value if morsel is not None else ""

    def form(self) -> dict[str, str]:
        """An urlencoded form body (the last value of a repeated field); empty for anything else."""
        if not self.header("content-type").startswith("application/x-www-form-urlencoded"):
            return {}
        if len(self.body) > MAX_FORM_BYTES:
            raise BadInput(f"the form is over {MAX_FORM_BYTES:,} bytes")
        fields = parse_qs(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {name: values[-1] for name, values in fields.items()}


@dataclass
class ConsoleResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def redirect(cls, location: str, *, status: int = 303) -> ConsoleResponse:
        return cls(status=status, headers={"Location": location}, content_type="text/plain; charset=utf-8")
