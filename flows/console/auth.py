"""Who may use the console, who they are, and that a form was posted from the console itself.

Two modes, chosen by ``BRIDGE_CONSOLE_AUTH``:

- ``key`` (local, and Azure without Entra ID): the console key (``BRIDGE_CONSOLE_KEY``), given once as
  ``?code=`` or an ``x-functions-key`` header, opens a session: a signed cookie (HttpOnly,
  SameSite=Strict, Secure over https) that expires. Operators name themselves on each decision.
- ``app_service``: App Service authentication (Entra ID) signs operators in before a request reaches
  the app and passes their name in ``X-MS-CLIENT-PRINCIPAL-NAME``. Only safe with that authentication
  on and set to refuse anonymous requests (README, "Operator console"). Where App Service does not say
  it is on (``WEBSITE_AUTH_ENABLED``), as under ``serve``, the mode refuses every request: anyone could
  send the header.

Every form carries a token bound to the session (or the signed-in operator) and signed with the key
(so the key is needed in both modes); a post without it, or one a browser says came from another
site, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Literal

from flows.console.http import ConsoleRequest

COOKIE = "bridge_console"
SESSION_SECONDS = 8 * 3600
PRINCIPAL_HEADER = "x-ms-client-principal-name"


@dataclass(frozen=True)
class Operator:
    """Who is using the console: a name when the platform signed them in, None in key mode."""

    session: str
    name: str | None


class Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


PLATFORM_SIGNS_IN = "WEBSITE_AUTH_ENABLED"  # set to True by App Service when its authentication is on


class ConsoleAuth:
    def __init__(
        self, mode: Literal["key", "app_service"], key: str | None, *, platform_signs_in: bool = False
    ) -> None:
        self.mode = mode
        self._key = key.encode() if key else b""
        self._platform_signs_in = platform_signs_in

    def given_key(self, request: ConsoleRequest) -> str | None:
        """A console key in the request (``?code=`` or ``x-functions-key``), if any."""
        return request.query.get("code") or request.header("x-functions-key") or None

    def key_matches(self, given: str) -> bool:
        return bool(self._key) and hmac.compare_digest(given.encode(), self._key)

    def open_session(self, *, now: float | None = None) -> str:
        """A new session cookie value: its expiry, signed with the key."""
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        return f"{expires}.{self._sign(f'session:{expires}')}"

    def operator(self, request: ConsoleRequest, *, now: float | None = None) -> Operator:
        """The operator behind a request; ``Refusal`` when there is none."""
        if not self._key:  # in app_service mode the key still signs the form tokens
            raise Refusal(503, "the console has no key configured (BRIDGE_CONSOLE_KEY)")
        if self.mode == "app_service":
            if not self._platform_signs_in:
                raise Refusal(
                    503,
                    f"BRIDGE_CONSOLE_AUTH is app_service, but App Service authentication is not on "
                    f"({PLATFORM_SIGNS_IN}): the operator's name could be forged; use key mode here",
                )
            name = request.header(PRINCIPAL_HEADER).strip()
            if not name:
                raise Refusal(401, "sign in first: App Service authentication named no operator")
            return Operator(session=f"principal:{name}", name=name)
        session = request.cookie(COOKIE)
        expires, _, signature = session.partition(".")
        valid = expires.isdigit() and hmac.compare_digest(signature, self._sign(f"session:{expires}"))
        if not valid or int(expires) < (time.time() if now is None else now):
            raise Refusal(401, "open the console with its key first (the link `serve` printed, or ?code=KEY)")
        return Operator(session=session, name=None)

    def csrf_token(self, operator: Operator) -> str:
        return self._sign(f"csrf:{operator.session}")

    def check_post(self, request: ConsoleRequest, operator: Operator, token: str) -> None:
        """Refuse a post from another site, or without this session's form token."""
        if request.header("sec-fetch-site") not in ("", "same-origin", "none"):
            raise Refusal(403, "refused: the form was posted from another site")
        if not hmac.compare_digest(token.encode(), self.csrf_token(operator).encode()):
            raise Refusal(403, "refused: the form's token is missing or stale; reload the page and try again")

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
