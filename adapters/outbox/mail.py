"""``OutboxMailer``: the embedded ``Mailer``, writing each e-mail as a real MIME ``.eml`` file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.outbox.folder import OutboxFolder
from adapters.outbox.mime import SMTP_COMPAT, alternative, make_boundary
from flows.ports import OutgoingEmail

if TYPE_CHECKING:
    from adapters.outbox.journal import OutboxJournal

IDEMPOTENCY_HEADER = "X-Bridge-Idempotency-Key"
_FALLBACK_DOMAIN = "cpl-bridge.invalid"


class OutboxMailer:
    """Writes ``<outbox>/mail/<safe key>.eml`` once per idempotency key; returns its Message-ID.

    A repeated send with the same key writes nothing and returns the Message-ID of the file already
    there. The Message-ID is derived from the key (``<sha256-prefix@sender's domain>``), so it is the
    same on every machine that sends the same e-mail.
    """

    def __init__(
        self,
        outbox: str | os.PathLike[str],
        *,
        sender: str,
        clock: Callable[[], datetime] | None = None,
        journal: OutboxJournal | None = None,
    ) -> None:
        """``sender``: the From header, e.g. ``"DCC CPL bridge <cpl-bridge@dcc.example>"``.
        ``journal``: commit each message there before its file (see ``adapters.outbox.journal``)."""
        self._folder = OutboxFolder(Path(outbox) / "mail", suffix=".eml", journal=journal)
        self._sender = sender
        self._clock = clock or (lambda: datetime.now(UTC))
        address = parseaddr(sender)[1]
        self._domain = address.rpartition("@")[2] or _FALLBACK_DOMAIN

    def message_id(self, idempotency_key: str) -> str:
        digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
        return f"<{digest}@{self._domain}>"

    def path_for(self, idempotency_key: str) -> Path:
        return self._folder.path_for(idempotency_key)

    def repair(self) -> list[Path]:
        """Write again the e-mails a crash lost after they were journaled (see ``OutboxFolder.repair``)."""
        return self._folder.repair()

    def send(self, email: OutgoingEmail) -> str:
        path, wrote = self._folder.write_once(email.idempotency_key, self._render(email))
        return self.message_id(email.idempotency_key) if wrote else _stored_message_id(path)

    def _render(self, email: OutgoingEmail) -> bytes:
        headers = self._headers(email)
        written = alternative(headers, email.text_body, email.html_body, boundary=make_boundary())
        return written if written is not None else self._mime(email, headers)

    def _headers(self, email: OutgoingEmail) -> list[tuple[str, str]]:
        subject = email.subject
        if not subject.isascii():  # as RFC 2047 encoded words, which folding then leaves intact
            subject = Header(subject, "utf-8").encode()
        return [
            ("From", self._sender),
            ("To", ", ".join(email.to)),
            ("Subject", subject),
            ("Date", format_datetime(self._clock())),
            ("Message-ID", self.message_id(email.idempotency_key)),
            (IDEMPOTENCY_HEADER, email.idempotency_key),
        ]

    @staticmethod
    def _mime(email: OutgoingEmail, headers: list[tuple[str, str]], boundary: str | None = None) -> bytes:
        """The message built by the ``email`` package: for bodies ``alternative`` leaves to it."""
        # The MIME classes with the SMTP flavour of compat32 build the same multipart/alternative
        # message as ``EmailMessage`` at a third of the cost (its header parser dominates a send).
        message = MIMEMultipart("alternative", boundary=boundary, policy=SMTP_COMPAT)
        for name, value in headers:
            message[name] = value
        message.attach(MIMEText(email.text_body, "plain", "utf-8", policy=SMTP_COMPAT))
        message.attach(MIMEText(email.html_body, "html", "utf-8", policy=SMTP_COMPAT))
        return message.as_bytes()


def _stored_message_id(path: Path) -> str:
    """The Message-ID of an e-mail already in the outbox (the sender may have been reconfigured since)."""
    with path.open("rb") as stream:
        headers = BytesParser(policy=policy.default).parse(stream, headersonly=True)
    return str(headers["Message-ID"]).strip()
