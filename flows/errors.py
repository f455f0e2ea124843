"""The bridge's error tree. Adapters translate what they catch into one of these, ``from`` the
original, so that the engine decides on retries by kind and never by a library's exception type."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class BadInput(BridgeError, ValueError):
    """Input that will never be accepted as it is: retrying cannot help; say what and where."""


class TransientError(BridgeError):
    """A failure that may pass: a timeout, a reset connection, a 429 or 5xx. Safe to retry.

    ``retry_after`` is the far side's own hint in seconds (from a Retry-After header), if it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(BridgeError):
    """A failure that will recur on retry (a 4xx other than 408/429, a refused authorisation)."""
