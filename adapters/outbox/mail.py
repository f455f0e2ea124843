"""``OutboxMailer``: the embedded ``Mailer``, writing each e-mail as a real MIME ``.eml`` file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.outbox.folder import OutboxFolder
from adapters.outbox.mime import (
    SMTP_COMPAT,
    SMTP_COMPAT_8BIT,
    UTF8_HEADERS,
    alternative,
    header_for_compat32,
    make_boundary,
)
from flows.domain.addresses import NotAnAddress, addr_spec
from flows.errors import BadInput
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
        self._sender = _from_header(sender)
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
            ("To", recipients(email.to)),
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
            message[name] = header_for_compat32(name, value)
        message.attach(MIMEText(email.text_body, "plain", "utf-8", policy=SMTP_COMPAT))
        message.attach(MIMEText(email.html_body, "html", "utf-8", policy=SMTP_COMPAT))
        utf8 = any(not value.isascii() for name, value in headers if name in UTF8_HEADERS)
        return message.as_bytes(policy=SMTP_COMPAT_8BIT if utf8 else SMTP_COMPAT)


def _from_header(sender: str) -> str:
    """The From header for ``sender`` (a setting, e.g. ``"DCC – CPL bridge <cpl-bridge@dcc.example>"``).

    A non-ASCII display name is written as an RFC 2047 encoded word on its own, before the address:
    given whole to the header folding, the name and the address became one encoded word, which a
    reader takes for a name without an address.
    """
    found = getaddresses([sender])
    if len(found) != 1 or "@" not in found[0][1]:
        raise ValueError(
            "the mail sender (BRIDGE_MAIL_SENDER) must be one address, 'name <address>' or 'address' "
            "(a name with a comma in double quotes)"
        )
    if sender.isascii():
        return sender
    name, address = found[0]
    if not address.isascii():  # a From in UTF-8 is not written (``UTF8_HEADERS``): refuse it plainly
        raise ValueError(
            "the mail sender's address must be ASCII (BRIDGE_MAIL_SENDER); only its name may not be"
        )
    return formataddr((name, address), charset="utf-8")


def recipients(addresses: Sequence[str]) -> str:
    """A To header's value: each address as an addr-spec, a non-ASCII domain as IDNA 2008.

    A non-ASCII local part is kept as it is (a dot-atom of printable characters): the header is then
    written in UTF-8, as RFC 6532 allows, since Graph's ``sendMail``, which this outbox stands in for,
    takes such an address. An address that is not one plain address (a list, a display name, no
    domain...) is ``BadInput``. The errors name the recipient's position, never the address (run
    history keeps no contact details).
    """
    return ", ".join(
        _addr_spec(given, f"recipient {number} of {len(addresses)}")
        for number, given in enumerate(addresses, start=1)
    )


def _addr_spec(given: str, where: str) -> str:
    """One recipient as the email package reads and writes it; ``BadInput`` naming ``where`` if it cannot."""
    try:
        return addr_spec(given)
    except NotAnAddress as error:
        raise BadInput(error.naming(where)) from error


def _stored_message_id(path: Path) -> str:
    """The Message-ID of an e-mail already in the outbox (the sender may have been reconfigured since)."""
    with path.open("rb") as stream:
        headers = BytesParser(policy=policy.default).parse(stream, headersonly=True)
    return str(headers["Message-ID"]).strip()
