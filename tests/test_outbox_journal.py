"""The outbox journal: each message committed to SQLite before its file, which then needs no fsync.

Power cuts cannot be made here, so their effect is: a journaled file deleted or cut short, as an
fsync-less write can leave it, and a row committed with no file (a crash between the two).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.embedded.sqlite import BridgeDatabase
from adapters.outbox import OutboxMailer, OutboxOperatorChannel
from adapters.outbox import folder as outbox_folder
from adapters.outbox.journal import OutboxJournal
from flows.bootstrap import bootstrap
from flows.settings import Settings
from tests.test_outbox import SENDER, a_card, an_email, files_in

NOW = datetime(2026, 11, 24, 10, 15, tzinfo=UTC)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[OutboxJournal]:
    with BridgeDatabase(tmp_path / "bridge.sqlite3") as database:
        yield OutboxJournal(database, clock=lambda: NOW)


def mailer_on(outbox: Path, journal: OutboxJournal | None) -> OutboxMailer:
    return OutboxMailer(outbox, sender=SENDER, clock=lambda: NOW, journal=journal)


def fsyncs_while(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(descriptor: int) -> None:
        calls.append(descriptor)
        real(descriptor)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_a_journaled_message_is_in_the_journal_and_its_file_is_not_synced(
    tmp_path: Path, journal: OutboxJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = fsyncs_while(monkeypatch)
    mailer = mailer_on(tmp_path / "outbox", journal)
    channel = OutboxOperatorChannel(tmp_path / "outbox", journal=journal)
    mailer.send(an_email())
    channel.post(a_card())
    assert fsyncs == []
    [mail_file, card_file] = files_in(tmp_path / "outbox")
    assert journal.content("mail", mail_file.name) == mail_file.read_bytes()
    assert journal.content("teams", card_file.name) == card_file.read_bytes()
    assert journal.sizes("mail") == {mail_file.name: mail_file.stat().st_size}


def test_without_a_journal_each_file_is_synced_before_the_send_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = fsyncs_while(monkeypatch)
    mailer_on(tmp_path / "outbox", None).send(an_email())
    assert len(fsyncs) == 1


def test_files_a_power_cut_lost_or_cut_short_are_written_again_at_start(
    tmp_path: Path, journal: OutboxJournal
) -> None:
    mailer = mailer_on(tmp_path / "outbox", journal)
    channel = OutboxOperatorChannel(tmp_path / "outbox", journal=journal)
    mailer.send(an_email("email:R-1"))
    mailer.send(an_email("email:R-2"))
    channel.post(a_card("teams:R-1"))
    lost, short = mailer.path_for("email:R-1"), mailer.path_for("email:R-2")
    card = channel.path_for("teams:R-1")
    expected = {path: path.read_bytes() for path in (lost, short, card)}
    untouched = card.stat().st_mtime_ns
    lost.unlink()
    short.write_bytes(b"")

    restarted = mailer_on(tmp_path / "outbox", journal)
    assert sorted(restarted.repair()) == sorted([lost, short])
    assert {path: path.read_bytes() for path in expected} == expected
    assert OutboxOperatorChannel(tmp_path / "outbox", journal=journal).repair() == []
    assert card.stat().st_mtime_ns == untouched
    assert restarted.repair() == []


def test_a_crash_between_the_row_and_the_file_is_mended_by_the_next_send(
    tmp_path: Path, journal: OutboxJournal
) -> None:
    mailer = mailer_on(tmp_path / "outbox", journal)
    path = mailer.path_for("email:R-1")
    journal.keep("mail", path.name, b"Message-ID: <first@dcc.example>\r\n\r\nthe first delivery's bytes\r\n")
    assert not path.exists()

    message_id = mailer.send(an_email("email:R-1"))
    assert message_id == "<first@dcc.example>"
    assert path.read_bytes().endswith(b"the first delivery's bytes\r\n")


def test_an_empty_file_whose_row_a_power_cut_lost_is_not_taken_for_the_message(
    tmp_path: Path, journal: OutboxJournal
) -> None:
    """The file's name reached the disk, its bytes did not, and its row went with the engine's records:
    the message is delivered again and must be written, not read back from the empty file."""
    mailer = mailer_on(tmp_path / "outbox", journal)
    path = mailer.path_for("email:R-1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")

    assert mailer.send(an_email("email:R-1")) == mailer.message_id("email:R-1")
    assert path.read_bytes() == journal.content("mail", path.name)
    assert path.stat().st_size > 0
    assert mailer.repair() == []


def test_a_leftover_file_of_the_same_size_is_replaced_by_the_first_bytes_kept(
    tmp_path: Path, journal: OutboxJournal
) -> None:
    """A power cut can leave a file of the right size holding zeros; a send that keeps its bytes first
    cannot have written what is already there."""
    folder = outbox_folder.OutboxFolder(tmp_path / "box", suffix=".eml", journal=journal)
    path = folder.path_for("k")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * 5)
    assert folder.write_once("k", b"hello") == (path, True)
    assert path.read_bytes() == b"hello"


def test_a_repair_that_fails_leaves_no_temporary_file(
    tmp_path: Path, journal: OutboxJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailer = mailer_on(tmp_path / "outbox", journal)
    mailer.send(an_email("email:R-1"))
    mailer.path_for("email:R-1").unlink()

    def failing(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="No space left"):
        mailer.repair()
    assert files_in(tmp_path / "outbox") == []


@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named-temporary"])
def test_racing_journaled_writers_keep_one_message(
    tmp_path: Path, journal: OutboxJournal, monkeypatch: pytest.MonkeyPatch, anonymous: bool
) -> None:
    if anonymous and not outbox_folder._ANONYMOUS_FILES:
        pytest.skip("no O_TMPFILE on this platform")
    monkeypatch.setattr(outbox_folder, "_ANONYMOUS_FILES", anonymous)
    folder = outbox_folder.OutboxFolder(tmp_path / "box", suffix=".eml", journal=journal)
    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(lambda n: folder.write_once("k", f"writer {n}".encode())[1], range(16)))
    assert wins.count(True) == 1
    [path] = files_in(tmp_path / "box")
    assert path.read_bytes() == f"writer {wins.index(True)}".encode()
    assert journal.content("box", path.name) == path.read_bytes()


def test_the_embedded_bridge_journals_its_outbox_and_repairs_it_when_it_starts(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with bootstrap(settings, clock=lambda: NOW) as app:
        app.parts.mailer.send(an_email("email:R-1"))
        app.parts.channel.post(a_card("teams:R-1"))
    files = files_in(settings.home / "outbox")
    assert len(files) == 2
    kept = {path: path.read_bytes() for path in files}
    for path in files:
        path.unlink()

    with bootstrap(settings, clock=lambda: NOW):
        pass
    assert {path: path.read_bytes() for path in files_in(settings.home / "outbox")} == kept


def test_no_repair_while_another_process_uses_the_home(tmp_path: Path) -> None:
    """A worker starting beside a draining one must not take the other's message, journaled a moment
    before its file is written, for one a crash lost: only the home's sole user repairs."""
    settings = Settings(home=tmp_path / "home")
    with bootstrap(settings, clock=lambda: NOW) as app:
        app.parts.mailer.send(an_email("email:R-1"))
    [path] = files_in(settings.home / "outbox")
    kept = path.read_bytes()
    path.unlink()

    with BridgeDatabase.in_home(settings.home), bootstrap(settings, clock=lambda: NOW):
        assert files_in(settings.home / "outbox") == []
    with bootstrap(settings, clock=lambda: NOW):
        assert path.read_bytes() == kept
