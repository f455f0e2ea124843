"""The outbox senders, against a real folder: MIME e-mails and Teams Workflows bodies as files."""

from __future__ import annotations

import errno
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tests.hypothesis_profiles  # noqa: F401 - loads the chosen Hypothesis profile
from adapters.outbox import IDEMPOTENCY_HEADER, OutboxMailer, OutboxOperatorChannel, safe_file_stem
from adapters.outbox import folder as outbox_folder
from adapters.outbox.json_text import indented
from adapters.outbox.mime import alternative, make_boundary
from flows.errors import BadInput
from flows.ports import OperatorCard, OutgoingEmail
from tests.support.cpl_world import CplWorld

SENDER = "DCC CPL bridge <cpl-bridge@dcc.example>"
NOW = datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
HTML = (
    "<html><body><p>Dear supplier,</p><p>Entry <b>S1-000123</b> is loaded &amp; you may start the"
    " upgrades.</p><table><tr><td>Firmware</td><td>0203</td></tr></table><p>Caf\u00e9 \u2014 \u00a3</p>"
    "</body></html>"
)


def an_email(
    key: str = "email:R-0001:loaded", *, subject: str = "S1-000123 loaded: you may upgrade"
) -> OutgoingEmail:
    return OutgoingEmail(
        to=("ops@northern-lights.example", "security@northern-lights.example"),
        subject=subject,
        text_body="Dear supplier,\nEntry S1-000123 is loaded; you may start the upgrades.\n",
        html_body=HTML,
        idempotency_key=key,
    )


def a_card(key: str = "teams:R-0001:loaded") -> OperatorCard:
    return OperatorCard(
        card={
            "type": "AdaptiveCard",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.5",
            "body": [{"type": "TextBlock", "text": "R-0001 loaded \u2014 S1-000123", "wrap": True}],
        },
        idempotency_key=key,
    )


def parse(path: Path) -> EmailMessage:
    with path.open("rb") as stream:
        message = BytesParser(policy=policy.default).parse(stream)
    assert isinstance(message, EmailMessage)
    return message


def files_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


@pytest.fixture
def mailer(tmp_path: Path) -> OutboxMailer:
    return OutboxMailer(tmp_path / "outbox", sender=SENDER, clock=lambda: NOW)


def test_the_eml_is_a_multipart_alternative_message_with_the_headers(
    mailer: OutboxMailer, tmp_path: Path
) -> None:
    message_id = mailer.send(an_email())

    [path] = files_in(tmp_path / "outbox")
    assert path.parent == tmp_path / "outbox" / "mail"
    assert path.suffix == ".eml"
    message = parse(path)
    assert message.get_content_type() == "multipart/alternative"
    assert message["From"] == SENDER
    assert message["To"] == "ops@northern-lights.example, security@northern-lights.example"
    assert [address.addr_spec for address in message["To"].addresses] == [
        "ops@northern-lights.example",
        "security@northern-lights.example",
    ]
    assert message["Subject"] == "S1-000123 loaded: you may upgrade"
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message["Message-ID"] == message_id
    assert message_id.startswith("<")
    assert message_id.endswith("@dcc.example>")
    assert message[IDEMPOTENCY_HEADER] == "email:R-0001:loaded"

    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text_part is not None
    assert html_part is not None
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert text_part.get_content().replace("\r\n", "\n") == an_email().text_body
    assert html_part.get_content().replace("\r\n", "\n").rstrip("\n") == HTML


def test_non_ascii_subject_survives(mailer: OutboxMailer, tmp_path: Path) -> None:
    mailer.send(an_email(subject="Caf\u00e9 \u2014 firmware 0203 approved"))
    [path] = files_in(tmp_path / "outbox")
    assert parse(path)["Subject"] == "Caf\u00e9 \u2014 firmware 0203 approved"


def to_header(path: Path) -> bytes:
    """The To header as written, unfolded."""
    head = path.read_bytes().split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
    [line] = [line for line in head.split(b"\r\n") if line.startswith(b"To:")]
    return line


def test_a_non_ascii_domain_is_written_as_idna(mailer: OutboxMailer, tmp_path: Path) -> None:
    """Not as one RFC 2047 encoded word, which a reader takes for a name, not an address."""
    to = ("ops@ex\u00e4mple.com", "security@northern-lights.example", "x@\u30c6\u30b9\u30c8.example")
    mailer.send(an_email().model_copy(update={"to": to}))

    [path] = files_in(tmp_path / "outbox")
    assert to_header(path) == (
        b"To: ops@xn--exmple-cua.com, security@northern-lights.example, x@xn--zckzah.example"
    )
    assert [address.addr_spec for address in parse(path)["To"].addresses] == [
        "ops@xn--exmple-cua.com",
        "security@northern-lights.example",
        "x@xn--zckzah.example",
    ]


def parse_utf8(path: Path) -> EmailMessage:
    """The message as the ``email`` package reads RFC 6532 headers: from its text (UTF-8), since its
    bytes parser keeps 8-bit header bytes as surrogates."""
    message = Parser(policy=policy.default).parsestr(path.read_bytes().decode("utf-8"))
    assert isinstance(message, EmailMessage)
    return message


def test_a_non_ascii_local_part_is_written_in_utf8(mailer: OutboxMailer, tmp_path: Path) -> None:
    """As RFC 6532 allows: Graph's sendMail, which the outbox stands in for, takes such an address."""
    to = ("zo\u00eb.m\u00fcller@ex\u00e4mple.com", "\u8a66\u3057@c.example", "ops@c.example")
    mailer.send(an_email().model_copy(update={"to": to}))

    [path] = files_in(tmp_path / "outbox")
    assert to_header(path) == (
        "To: zo\u00eb.m\u00fcller@xn--exmple-cua.com, \u8a66\u3057@c.example, ops@c.example".encode()
    )
    message = parse_utf8(path)
    assert [address.addr_spec for address in message["To"].addresses] == [
        "zo\u00eb.m\u00fcller@xn--exmple-cua.com",
        "\u8a66\u3057@c.example",
        "ops@c.example",
    ]
    assert message["Subject"] == "S1-000123 loaded: you may upgrade"  # the rest is as before: 7-bit
    assert path.read_bytes().split(b"\r\n\r\n", 1)[1].isascii()


@pytest.mark.parametrize(
    "to",
    [
        ("zo\u00eb@c.example",),
        ("zo\u00eb" * 30 + "@c.example", "ops@c.example"),  # folded, its first line empty
        tuple(f"zo\u00eb.m\u00fcller{n}@c.example" for n in range(5)),
    ],
)
@pytest.mark.parametrize(("text_body", "html_body"), [("Text", HTML), ("", HTML)])
def test_a_utf8_to_header_is_written_alike_on_either_path(
    to: tuple[str, ...], text_body: str, html_body: str
) -> None:
    """The fast path and the email package write the same bytes (an empty body takes the package's)."""
    mailer = OutboxMailer(Path("unused"), sender=SENDER, clock=lambda: NOW)
    email = OutgoingEmail(
        to=to, subject="S", text_body=text_body, html_body=html_body, idempotency_key="mail/acknowledge/1"
    )
    headers = mailer._headers(email)
    boundary = make_boundary()
    written = alternative(headers, text_body, html_body, boundary=boundary)
    expected = OutboxMailer._mime(email, headers, boundary)
    assert written is None or written == expected
    read = Parser(policy=policy.default).parsestr(expected.decode("utf-8"))
    assert tuple(address.addr_spec for address in read["To"].addresses) == to


@pytest.mark.parametrize(("text_body", "html_body"), [("Text", HTML), ("", HTML)])
def test_a_sender_named_in_non_ascii_keeps_its_address_on_either_path(text_body: str, html_body: str) -> None:
    """The name is encoded on its own: encoded with the address, a reader found a name and no address."""
    sender = "DCC \u2013 Opérations CPL <cpl-bridge@dcc.example>"
    mailer = OutboxMailer(Path("unused"), sender=sender, clock=lambda: NOW)
    email = OutgoingEmail(
        to=("a@b.example",), subject="S", text_body=text_body, html_body=html_body, idempotency_key="k"
    )
    headers = mailer._headers(email)
    boundary = make_boundary()
    written = alternative(headers, text_body, html_body, boundary=boundary)
    expected = OutboxMailer._mime(email, headers, boundary)
    assert written is None or written == expected
    assert expected.isascii()  # an encoded word: no UTF-8 header needed for a name
    (address,) = BytesParser(policy=policy.default).parsebytes(expected)["From"].addresses
    assert (address.display_name, address.addr_spec) == (
        "DCC \u2013 Opérations CPL",
        "cpl-bridge@dcc.example",
    )


def test_a_sender_address_in_non_ascii_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"address must be ASCII \(BRIDGE_MAIL_SENDER"):
        OutboxMailer(Path("unused"), sender="Bridge <zoë@dcc.example>")


@pytest.mark.parametrize(
    "sender", ["M\u00fcller, DCC <a@dcc.example>", "Smith, DCC <a@dcc.example>", "DCC Ops"]
)
def test_a_sender_that_is_not_one_address_is_refused_naming_the_setting(sender: str) -> None:
    """An unquoted comma makes two mailboxes of the From header; a name alone, none."""
    with pytest.raises(ValueError, match=r"BRIDGE_MAIL_SENDER\) must be one address"):
        OutboxMailer(Path("unused"), sender=sender)


@pytest.mark.parametrize(
    ("to", "problem"),
    [
        (
            "zo\u00eb\u200b@c.example",
            "recipient 1 of 1: the part before the @ has a control, format or space",
        ),
        (
            "zo\u00eb\u00a0x@c.example",
            "recipient 1 of 1: the part before the @ has a control, format or space",
        ),
        ("zo\u00eb..x@c.example", "recipient 1 of 1 is not one e-mail address"),
        ("Zo\u00eb <zoe@c.example>", "recipient 1 of 1 is not one e-mail address"),
        ("a,b@c.example", "recipient 1 of 1 is not one e-mail address"),
        ("Zoe <zoe@c.example>", "recipient 1 of 1 is not one e-mail address"),
        ("zoe@", "recipient 1 of 1 is not one e-mail address"),
        ("zoe@a..example", "recipient 1 of 1 is not one e-mail address"),
        ("zoe@\u00e4..example", "recipient 1 of 1: the domain is not a valid international domain name"),
    ],
)
def test_a_recipient_the_header_cannot_carry_is_refused_unwritten(
    mailer: OutboxMailer, tmp_path: Path, to: str, problem: str
) -> None:
    with pytest.raises(BadInput, match=re.escape(problem)) as raised:
        mailer.send(an_email().model_copy(update={"to": (to,)}))

    assert to not in str(raised.value)  # run history keeps no contact details
    assert files_in(tmp_path) == []


def test_sending_twice_with_the_same_key_writes_one_file_and_returns_the_same_id(
    mailer: OutboxMailer, tmp_path: Path
) -> None:
    first = mailer.send(an_email())
    before = files_in(tmp_path / "outbox")[0].read_bytes()
    second = mailer.send(an_email(subject="a changed subject"))
    assert first == second
    [path] = files_in(tmp_path / "outbox")
    assert path.read_bytes() == before


def test_the_message_id_is_derived_from_the_key(tmp_path: Path) -> None:
    one = OutboxMailer(tmp_path / "one", sender=SENDER).send(an_email())
    other = OutboxMailer(tmp_path / "two", sender=SENDER).send(an_email())
    different = OutboxMailer(tmp_path / "one", sender=SENDER).send(an_email("email:R-0002:loaded"))
    assert one == other
    assert different != one


def test_a_repeat_returns_the_stored_id_even_after_the_sender_changed(
    mailer: OutboxMailer, tmp_path: Path
) -> None:
    first = mailer.send(an_email())
    reconfigured = OutboxMailer(tmp_path / "outbox", sender="Bridge <bridge@elsewhere.example>")
    assert reconfigured.send(an_email()) == first


def test_concurrent_sends_with_one_key_leave_one_file(mailer: OutboxMailer, tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(lambda _: mailer.send(an_email()), range(16)))
    assert len(ids) == 1
    assert len(files_in(tmp_path / "outbox")) == 1


def test_the_teams_file_is_the_workflows_envelope(tmp_path: Path) -> None:
    channel = OutboxOperatorChannel(tmp_path / "outbox")
    post_id = channel.post(a_card())
    [path] = files_in(tmp_path / "outbox")
    assert path.parent == tmp_path / "outbox" / "teams"
    assert path.suffix == ".json"
    assert path.stem == post_id
    body = json.loads(path.read_text(encoding="utf-8"))
    assert body == {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": a_card().card}],
    }


def test_posting_twice_with_the_same_key_writes_one_file(tmp_path: Path) -> None:
    channel = OutboxOperatorChannel(tmp_path / "outbox")
    first = channel.post(a_card())
    changed = OperatorCard(
        card={"type": "AdaptiveCard", "body": []}, idempotency_key=a_card().idempotency_key
    )
    assert channel.post(changed) == first
    [path] = files_in(tmp_path / "outbox")
    assert json.loads(path.read_text(encoding="utf-8"))["attachments"][0]["content"] == a_card().card
    assert channel.post(a_card("teams:R-0002:loaded")) != first
    assert len(files_in(tmp_path / "outbox")) == 2


def test_no_temporary_files_are_left_behind(mailer: OutboxMailer, tmp_path: Path) -> None:
    channel = OutboxOperatorChannel(tmp_path / "outbox")
    for number in range(3):
        for _ in range(2):
            mailer.send(an_email(f"email:R-{number}"))
            channel.post(a_card(f"teams:R-{number}"))
    names = [path.name for path in files_in(tmp_path / "outbox")]
    assert len(names) == 6
    assert not [name for name in names if name.startswith(".") or name.endswith(".tmp")]


@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named-temporary"])
def test_both_ways_of_writing_write_once_and_leave_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anonymous: bool
) -> None:
    """The Linux path (an unnamed inode linked in) and the portable one (a named temporary file)."""
    if anonymous and not outbox_folder._ANONYMOUS_FILES:
        pytest.skip("no O_TMPFILE on this platform")
    monkeypatch.setattr(outbox_folder, "_ANONYMOUS_FILES", anonymous)
    folder = outbox_folder.OutboxFolder(tmp_path / "box", suffix=".eml")
    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(lambda n: folder.write_once("k", f"writer {n}".encode())[1], range(16)))
    assert wins.count(True) == 1
    [path] = files_in(tmp_path / "box")
    assert path.read_bytes() == f"writer {wins.index(True)}".encode()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_file_system_without_o_tmpfile_gets_the_named_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not outbox_folder._ANONYMOUS_FILES:
        pytest.skip("no O_TMPFILE on this platform")
    real_open = os.open

    def refusing(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    folder = outbox_folder.OutboxFolder(tmp_path / "box", suffix=".json")
    assert folder.write_once("k", b"first")[1] is True
    assert folder.write_once("k", b"second")[1] is False
    [path] = files_in(tmp_path / "box")
    assert path.read_bytes() == b"first"


@pytest.mark.parametrize(
    "key",
    [
        "email:R-0001/loaded",
        "../../etc/passwd",
        'a\\b:c*d?e"f<g>h|i',
        "",
        "   ",
        "\u00e9t\u00e9",
        "x" * 500,
        "CON",
    ],
)
def test_safe_file_names(key: str) -> None:
    stem = safe_file_stem(key)
    assert stem == safe_file_stem(key)
    assert all(character.isascii() and (character.isalnum() or character in "._-") for character in stem)
    assert not stem.startswith(".")
    assert len(stem) <= 80


def test_safe_file_names_do_not_collide() -> None:
    keys = ["email:R-1/x", "email_R-1_x", "email/R-1:x", "Email:R-1/x", "email:R-1/x ", "x" * 100, "x" * 101]
    stems = [safe_file_stem(key) for key in keys]
    assert len({stem.casefold() for stem in stems}) == len(keys)


# --- the e-mail bytes are the ones the email package writes --------------------------------------

_HEADER_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=120)
_BODY = st.text(st.characters(codec="utf-8"), max_size=400)


@given(
    subject=st.one_of(_HEADER_TEXT, st.sampled_from(["S1-000123 loaded: you may upgrade", "x" * 90])),
    recipients=st.lists(st.emails(), min_size=1, max_size=4),
    key=st.one_of(_HEADER_TEXT, st.just("mail/loaded/10001")),
    text_body=_BODY,
    html_body=st.one_of(_BODY, st.just(HTML)),
)
def test_the_written_bytes_are_what_the_email_package_writes(
    subject: str, recipients: list[str], key: str, text_body: str, html_body: str
) -> None:
    """``mime.alternative`` (the fast path) gives the bytes ``MIMEMultipart`` would, boundary apart."""
    mailer = OutboxMailer(Path("unused"), sender=SENDER, clock=lambda: NOW)
    email = OutgoingEmail(
        to=tuple(recipients), subject=subject, text_body=text_body, html_body=html_body, idempotency_key=key
    )
    headers = mailer._headers(email)
    boundary = make_boundary()
    try:
        expected = OutboxMailer._mime(email, headers, boundary)
    except Exception as error:  # the email package refuses it: so must the fast path
        with pytest.raises(type(error)):
            alternative(headers, text_body, html_body, boundary=boundary)
        return
    written = alternative(headers, text_body, html_body, boundary=boundary)
    assert written is None or written == expected
    if text_body and html_body:
        assert written is not None  # only empty bodies are left to the email package


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec="utf-8")),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@given(_JSON)
def test_indented_json_is_what_json_dumps_writes(value: Any) -> None:
    try:
        expected = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or infinity: refused the same way
        with pytest.raises(ValueError, match="Out of range float"):
            indented(value)
        return
    assert indented(value) == expected


def test_a_response_from_a_non_ascii_address_is_acknowledged_to_it(tmp_path: Path) -> None:
    """From the form to the outbox: the intake takes the address (Graph mail would), and so does the
    outbox, which once refused it and failed the acknowledgement."""
    world = CplWorld(tmp_path)
    responder = "zo\u00eb.m\u00fcller@amberline-energy.example"
    assert world.notify("2026-11-20T08:00:00Z", 361, responder=responder) == 0

    notification = world.case(361).notification
    assert notification is not None and notification.responder == responder
    [acknowledgement] = (world.home / "outbox" / "mail").glob("*acknowledge*.eml")
    message = parse_utf8(acknowledgement)
    assert [address.addr_spec for address in message["To"].addresses] == [responder]
    assert message[IDEMPOTENCY_HEADER] == "mail/acknowledge/361"
