"""The outbox's shorter paths give what the longer ones give."""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tests.hypothesis_profiles  # noqa: F401 - loads the chosen Hypothesis profile
from adapters.embedded.sqlite import BridgeDatabase
from adapters.outbox import folder as outbox_folder
from adapters.outbox import mail, mime
from adapters.outbox.journal import OutboxJournal
from flows.domain import addresses
from flows.errors import BadInput
from tests.test_outbox import files_in

NOW = datetime(2026, 11, 24, 10, 15, tzinfo=UTC)

_ATOM = st.text(st.sampled_from("aZ09!#$%&'*+/=?^_`{|}~-.@\"() \u00e9"), min_size=0, max_size=12)


@given(st.one_of(st.emails(), st.builds(lambda a, b: f"{a}@{b}", _ATOM, _ATOM), _ATOM))
def test_a_plain_address_is_written_as_the_email_package_writes_it(address: str) -> None:
    """An address the pattern takes as plain is one the email package reads and writes back unchanged."""
    if addresses._PLAIN_ADDRESS.fullmatch(address) is None:
        return
    assert addresses._parsed(address) == address


@pytest.mark.parametrize(
    "address",
    ["a@b", "first.last@sub.example.com", "o'brien+tag@x-y.example", "a!#$%&'*+/=?^_`{|}~-@b-c.d"],
)
def test_plain_addresses_take_the_short_path(address: str) -> None:
    assert addresses._PLAIN_ADDRESS.fullmatch(address) is not None
    assert mail.recipients([address, address]) == f"{address}, {address}"
    assert addresses.addr_spec(address) == addresses._parsed(address) == address


@pytest.mark.parametrize(
    "address", [".a@b", "a.@b", "a..b@c", "a@b..c", "a@.b", "a@b.", "a@", "@b", "a b@c", "a@b\n", "\u00e9@b"]
)
def test_anything_else_takes_the_email_packages_path(address: str) -> None:
    assert addresses._PLAIN_ADDRESS.fullmatch(address) is None
    try:
        expected = addresses._parsed(address)
    except addresses.NotAnAddress as error:
        with pytest.raises(BadInput, match=re.escape(error.naming("recipient 1 of 1"))):
            mail.recipients([address])
    else:
        assert mail.recipients([address]) == expected


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[OutboxJournal]:
    with BridgeDatabase(tmp_path / "bridge.sqlite3") as database:
        yield OutboxJournal(database, clock=lambda: NOW)


@pytest.mark.parametrize("journaled", [True, False], ids=["journaled", "synced"])
@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named-temporary"])
def test_a_folder_removed_between_messages_is_made_again(
    tmp_path: Path, journal: OutboxJournal, monkeypatch: pytest.MonkeyPatch, journaled: bool, anonymous: bool
) -> None:
    """The folder is made when a write finds it missing, not looked for before every message."""
    if anonymous and not outbox_folder._ANONYMOUS_FILES:
        pytest.skip("no O_TMPFILE on this platform")
    monkeypatch.setattr(outbox_folder, "_ANONYMOUS_FILES", anonymous)
    folder = outbox_folder.OutboxFolder(
        tmp_path / "out" / "mail", suffix=".eml", journal=journal if journaled else None
    )

    assert folder.write_once("k1", b"first")[1] is True
    shutil.rmtree(tmp_path / "out")
    assert folder.write_once("k2", b"second")[1] is True

    assert [path.read_bytes() for path in files_in(tmp_path / "out")] == [b"second"]


def test_a_short_write_is_continued(
    tmp_path: Path, journal: OutboxJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not outbox_folder._ANONYMOUS_FILES:
        pytest.skip("no O_TMPFILE on this platform")
    real = os.write
    monkeypatch.setattr(os, "write", lambda descriptor, data: real(descriptor, bytes(data[:3])))
    folder = outbox_folder.OutboxFolder(tmp_path / "mail", suffix=".eml", journal=journal)

    path, wrote = folder.write_once("k", b"0123456789")

    assert wrote is True
    assert path.read_bytes() == b"0123456789"


def test_the_first_message_replaces_a_leftover_under_its_name(tmp_path: Path, journal: OutboxJournal) -> None:
    """A file whose row a power cut lost, whatever its size: the bytes now kept replace it."""
    folder = outbox_folder.OutboxFolder(tmp_path / "mail", suffix=".eml", journal=journal)
    folder.root.mkdir()
    for leftover in (b"", b"older", b"a much longer older message"):
        key = f"k{len(leftover)}"
        folder.path_for(key).write_bytes(leftover)

        path, wrote = folder.write_once(key, b"newer")

        assert wrote is True
        assert path.read_bytes() == b"newer"
    assert not [path for path in folder.root.iterdir() if path.name.startswith(".")]


@given(st.one_of(st.text(max_size=2000), st.integers(0, 120).map(lambda lines: "x" * (57 * lines))))
def test_a_base64_part_is_cut_into_the_lines_encodebytes_writes(body: str) -> None:
    expected = base64.encodebytes(body.encode("utf-8")).replace(b"\n", b"\r\n")
    assert mime._base64_part("plain", body).split(b"\r\n\r\n", 1)[1] == expected
