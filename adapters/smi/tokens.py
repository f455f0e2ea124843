"""``CredentialToken``: a bearer token for one scope from an azure-identity credential, kept until near
its expiry so that each SMI request does not ask Entra ID (or the credential's own cache) again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from azure.core.credentials import AccessToken

from adapters.identity import token_failure
from flows.errors import BridgeError

REFRESH_MARGIN_SECONDS = 300.0
"""A token this close to its expiry is replaced: a request may take a while and clocks differ."""


class TokenSource(Protocol):
    """What the bridge needs of an azure-identity credential (``DefaultAzureCredential``, ...)."""

    def get_token(self, *scopes: str, claims: str | None = None) -> AccessToken: ...


@runtime_checkable
class RenewableToken(Protocol):
    """A bearer token source that can replace a token the far side refused (``CredentialToken``)."""

    def __call__(self) -> str: ...

    def renew(self, refused: str, *, claims: str | None = None) -> str: ...


class CredentialToken:
    """A ``Callable[[], str]`` giving a valid bearer token for ``scope`` (e.g. ``api://<smi-app>/.default``).

    The token is reused until ``refresh_margin`` seconds before its ``expires_on``, then fetched again.
    A token service that was busy (408, 429, 5xx: build the credential with
    ``adapters.identity.credential_options()`` so that this is known) or not reached is a
    ``TransientError``; a refusal (an invalid client, AADSTS 4xx, no managed identity here) is a
    ``PermanentError``: configuration. Thread-safe: concurrent callers share one fetch.

    ``renew`` replaces a token the SMI refused (401) before its time, e.g. after a key rollover.
    """

    def __init__(
        self,
        credential: TokenSource,
        scope: str,
        *,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._token.expires_on - self._refresh_margin <= self._clock():
                self._token = self._fetch()
            return self._token.token

    def renew(self, refused: str, *, claims: str | None = None) -> str:
        """A token in place of ``refused``, which the SMI answered 401, fetched anew unless another
        caller did so already.

        azure-identity keeps tokens too and would hand the refused one back, so the fetch carries a
        claims challenge: the SMI's own (``claims``, from its ``WWW-Authenticate``) or one asking for a
        token issued from now on, as Continuous Access Evaluation does; either makes it ask afresh.
        """
        with self._lock:
            if self._token is None or self._token.token == refused:
                self._token = self._fetch(claims or _issued_from(self._clock()))
            return self._token.token

    def _fetch(self, claims: str | None = None) -> AccessToken:
        try:
            if claims is not None:
                return self._credential.get_token(self._scope, claims=claims)
            return self._credential.get_token(self._scope)
        except Exception as error:  # azure-identity's, msal's and the hook's: sorted by cause below
            failure = token_failure(error)
            said = "" if failure.transient or isinstance(error, BridgeError) else f" ({_message(error)})"
            raise failure.error(f"no token for {self._scope}{said}") from error


def _issued_from(now: float) -> str:
    """A claims challenge for an access token issued no earlier than ``now`` (Entra ID's ``nbf`` form)."""
    return json.dumps({"access_token": {"nbf": {"essential": True, "value": str(int(now))}}})


def _message(error: Exception) -> str:
    """azure-identity's own account of a refusal (``AADSTS7000215: Invalid client secret...``)."""
    message = getattr(error, "message", None)
    return " ".join(str(message if isinstance(message, str) else error).split())
