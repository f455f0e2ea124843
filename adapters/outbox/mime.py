"""The outbox's e-mail bytes: multipart/alternative, a UTF-8 text part and an HTML part, CRLF line ends.
Headers are 7-bit but a To with a non-ASCII address, which is written in UTF-8 as RFC 6532 allows.

``email``'s generator spends about a millisecond per message, mostly folding headers that need no
folding. ``alternative`` writes the bytes ``MIMEMultipart`` and ``MIMEText`` would (the test suite
checks it, byte for byte, for the same boundary): a header that is short printable ASCII is written
as it is, any other goes through the same policy's ``fold_binary`` the generator would call.
"""

from __future__ import annotations

import binascii
import random
import re
import sys
from collections.abc import Sequence
from email import policy

SMTP_COMPAT = policy.compat32.clone(linesep="\r\n")  # CRLF line ends, as on the wire
SMTP_COMPAT_8BIT = SMTP_COMPAT.clone(cte_type="8bit")
"""The generator's policy for a message with a UTF-8 header: it writes such a header's bytes as they are."""
UTF8_HEADERS = frozenset({"To"})
"""Address headers whose non-ASCII value is written in UTF-8 (RFC 6532), folded by ``UTF8_FOLDING``. An
RFC 2047 encoded word, compat32's way with other non-ASCII text, turns an address into a name."""
UTF8_FOLDING = policy.SMTPUTF8
CRLF = "\r\n"
_CRLF = CRLF.encode("ascii")
_MAX_LINE = 78  # compat32 folds longer header lines
_BASE64_LINE = 76  # characters of a base64 line, as base64mime writes them
_UNFOLDED = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")  # values folding leaves as they are
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))


def make_boundary() -> str:
    """A boundary as ``email.generator`` makes them: random, so a message body cannot forge it."""
    token = random.randrange(sys.maxsize)  # noqa: S311 - a MIME boundary, not a secret
    return f"{'=' * 15}{token:0{_BOUNDARY_WIDTH}d}=="


def alternative(
    headers: Sequence[tuple[str, str]], text_body: str, html_body: str, *, boundary: str
) -> bytes | None:
    """The message's bytes; ``None`` for bodies the ``email`` package treats its own way (empty,
    or not encodable as UTF-8), which the caller then builds with that package."""
    if not text_body or not html_body:
        return None
    try:
        parts = [_base64_part("plain", text_body), _base64_part("html", html_body)]
    except UnicodeEncodeError:
        return None
    head = [
        f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}'.encode("ascii"),
        f"MIME-Version: 1.0{CRLF}".encode("ascii"),
        *(_header(name, value) for name, value in headers),
    ]
    delimiter = f"--{boundary}{CRLF}".encode("ascii")
    if any(delimiter in part for part in parts):
        return None  # cannot happen with base64 bodies; the email package would pick another one
    return b"".join(
        (
            *head,
            _CRLF,  # the blank line that ends the headers
            delimiter,
            parts[0],
            _CRLF + delimiter,
            parts[1],
            f"{CRLF}--{boundary}--{CRLF}".encode("ascii"),
        )
    )


def _header(name: str, value: str) -> bytes:
    line = f"{name}: {value}"
    if len(line) <= _MAX_LINE and _UNFOLDED.fullmatch(value):
        return f"{line}{CRLF}".encode("ascii")
    if name in UTF8_HEADERS and not value.isascii():
        return SMTP_COMPAT_8BIT.fold_binary(name, header_for_compat32(name, value))
    return SMTP_COMPAT.fold_binary(name, value)


def header_for_compat32(name: str, value: str) -> str:
    """``value`` as the ``email`` package's compat32 messages hold a header written in UTF-8: its bytes
    as folded here, decoded with ``surrogateescape`` (as its parser keeps 8-bit headers), for a generator
    with ``SMTP_COMPAT_8BIT`` to write back as they are. Any other value is returned unchanged."""
    if name not in UTF8_HEADERS or value.isascii():
        return value
    folded = UTF8_FOLDING.fold_binary(name, value)  # b"To: ...\r\n", or b"To:\r\n ...\r\n" when long
    return folded[len(name) + 1 : -len(_CRLF)].removeprefix(b" ").decode("ascii", "surrogateescape")


def _base64_part(subtype: str, body: str) -> bytes:
    # The lines base64mime writes: 76 characters (57 bytes) each, each ended. ``base64.encodebytes``
    # calls the encoder once a line from a Python loop; encoded at once, the text is only cut into
    # lines (a fifth less work for a message's two parts).
    encoded = binascii.b2a_base64(body.encode("utf-8"), newline=False)
    lines = [encoded[start : start + _BASE64_LINE] for start in range(0, len(encoded), _BASE64_LINE)]
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}MIME-Version: 1.0{CRLF}'
        f"Content-Transfer-Encoding: base64{CRLF}{CRLF}".encode("ascii")
        + _CRLF.join(lines)
        + (_CRLF if lines else b"")
    )
