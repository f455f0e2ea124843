"""An outbox folder: one file per idempotency key, written atomically, its first bytes kept.

A file is replaced only by the bytes first kept for its key, when a journaled file turns out missing
or cut short (see ``adapters.outbox.journal``); a second message for a key never replaces the first.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.outbox.journal import OutboxJournal

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PREFIX_LENGTH = 60
_DIGEST_LENGTH = 16  # hex digits of SHA-256: 64 bits, so two keys will not meet by chance


def safe_file_stem(key: str) -> str:
    """A file name (without suffix) for a key that may hold ``:``, ``/`` and the like.

    A readable prefix (unsafe runs become ``_``) then a SHA-256 of the whole key: two keys that
    differ only in what the prefix drops, or in letter case (on a case-insensitive disk), still get
    different names; the same key always gets the same one.
    """
    prefix = _UNSAFE.sub("_", key)[:_PREFIX_LENGTH].strip("._-") or "key"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_DIGEST_LENGTH]
    return f"{prefix}-{digest}"


class OutboxFolder:
    """A folder of outgoing messages, created on first use.

    With a ``journal`` (see ``adapters.outbox.journal``) each message is committed there first and its
    file written without an fsync; ``repair`` restores, at start, a file a crash lost or cut short.
    Without one, each file is flushed to disk before ``write_once`` returns.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, suffix: str, journal: OutboxJournal | None = None
    ) -> None:
        self.root = Path(root)
        self.suffix = suffix
        self._journal = journal
        self._lock = threading.Lock()  # only for file systems without hard links (see ``write_once``)

    def path_for(self, key: str) -> Path:
        return self.root / f"{safe_file_stem(key)}{self.suffix}"

    def write_once(self, key: str, content: bytes) -> tuple[Path, bool]:
        """Write ``content`` as the key's file unless it has one; whether this call's bytes are the ones kept.

        The bytes go to a file without a name yet, which then takes the final name in one step, so a
        reader never sees half a message. The final name is taken with a hard link, which fails if the
        name exists, so two writers racing for a key cannot both win (``os.replace`` would let the
        second overwrite the first). Without a journal the file is flushed to disk first, so a crash
        leaves no half-written file under the final name either.

        With a journal the bytes kept there decide, every time: a file a power cut left empty (its
        name on disk, its data not, its journal row lost with the engine's records) is replaced by the
        bytes now kept, instead of being taken for the message already sent.

        On Linux the unnamed file is an ``O_TMPFILE`` inode, linked in through ``/proc/self/fd``:
        creating it does not touch the folder (unjournaled, on ext4 a named create waited for the
        journal commit of the previous message's fsync, about a millisecond a message), and a crash
        leaves nothing to clean up. Elsewhere it is a named temporary file in the same folder, unlinked after.
        """
        target = self.path_for(key)
        if self._journal is None:
            if target.exists():
                return target, False
            return target, self._write_new_in_folder(target, content, sync=True)
        kept, first = self._journal.keep(self.root.name, target.name, content)
        if first:
            # The key's first message, nearly always: link it in, and look only if the name is taken.
            # A file there is a leftover, there before these bytes were kept (a power cut lost its row,
            # not its name), or a racer's, linked after the keep with these same bytes: either way the
            # kept bytes replace it.
            if not self._write_new_in_folder(target, kept, sync=False):
                self._replace(target, kept)
            return target, first
        found = _size(target)
        if found == len(kept):
            return target, first  # the kept message, written by an earlier call
        self.root.mkdir(parents=True, exist_ok=True)
        # A file found now is cut short. One linked by a racer since holds these same bytes, and is
        # left alone if whole.
        lost_race = found is None and not self._write_new(target, kept, sync=False)
        if found is not None or (lost_race and _size(target) != len(kept)):
            self._replace(target, kept)
        return target, first

    def repair(self) -> list[Path]:
        """Write again each journaled file that is missing or not of its kept size; the files written.

        A power cut can lose a file written without an fsync, or leave it empty, while the journal row
        committed before it survives. Run at start, before any message is sent. Sizes only: a file of
        the right size is trusted (ext4's default ordered mode writes a file's data before its size).
        """
        if self._journal is None:
            return []
        repaired = []
        for name, size in self._journal.sizes(self.root.name).items():
            path = self.root / name
            if _size(path) == size:
                continue
            content = self._journal.content(self.root.name, name)
            if content is None:  # pragma: no cover - rows are never deleted
                continue
            self.root.mkdir(parents=True, exist_ok=True)
            self._replace(path, content)
            repaired.append(path)
        return repaired

    def _replace(self, target: Path, content: bytes) -> None:
        """Put ``content`` under ``target``'s name whatever is there now, synced (a rare repair)."""
        temporary = self._temporary(content, sync=True)
        try:
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    def _write_new_in_folder(self, target: Path, content: bytes, *, sync: bool) -> bool:
        """``_write_new``, making the folder first when it is missing (the first write, or an operator
        removed it): asked only then, not before every message."""
        try:
            return self._write_new(target, content, sync=sync)
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            return self._write_new(target, content, sync=sync)

    def _write_new(self, target: Path, content: bytes, *, sync: bool) -> bool:
        """Write ``target`` unless it exists; whether this call wrote it. ``sync``: fsync it first."""
        if _ANONYMOUS_FILES:
            wrote = self._write_anonymous(target, content, sync=sync)
            if wrote is not None:
                return wrote
        temporary = self._temporary(content, sync=sync)
        try:
            return self._publish(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    def _temporary(self, content: bytes, *, sync: bool) -> Path:
        """A named temporary file in the folder holding ``content``; the caller removes it."""
        handle, name = tempfile.mkstemp(dir=self.root, prefix=".writing-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(content)
                stream.flush()
                if sync:
                    os.fsync(stream.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def _write_anonymous(self, target: Path, content: bytes, *, sync: bool) -> bool | None:
        """Write through an ``O_TMPFILE`` inode; ``None`` when this folder's file system cannot."""
        try:
            handle = os.open(self.root, os.O_TMPFILE | os.O_WRONLY, 0o600)
        except OSError as error:
            if error.errno in _NO_ANONYMOUS_FILES:
                return None
            raise
        try:
            unwritten = memoryview(content)
            while unwritten:  # os.write may write less than asked
                unwritten = unwritten[os.write(handle, unwritten) :]
            if sync:
                os.fsync(handle)
            try:
                # A ``src_dir_fd`` makes ``os.link`` call linkat(2) with AT_SYMLINK_FOLLOW, which links
                # the inode behind /proc/self/fd/N; plain link(2) would not follow that name. linkat
                # ignores the descriptor for an absolute source path, so the file's own will do, and
                # no descriptor of the folder is opened for it.
                os.link(f"/proc/self/fd/{handle}", target, src_dir_fd=handle, follow_symlinks=True)
            except FileExistsError:
                return False
            except OSError as error:
                if error.errno in _NO_ANONYMOUS_FILES:  # no /proc: the named temporary file then
                    return None
                raise
            return True
        finally:
            os.close(handle)

    def _publish(self, temporary: Path, target: Path) -> bool:
        try:
            os.link(temporary, target)
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network or FAT volumes)
            with self._lock:
                if target.exists():
                    return False
                os.replace(temporary, target)
        return True


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


# O_TMPFILE and linkat through /proc are Linux's; elsewhere every write takes the named path.
_ANONYMOUS_FILES = hasattr(os, "O_TMPFILE") and sys.platform == "linux"
# Errors that say "not here" rather than "failed": the file system or kernel lacks O_TMPFILE (EISDIR
# from kernels older than it, EOPNOTSUPP or EINVAL from file systems without it), /proc is missing
# (ENOENT), or the volume has no hard links (EPERM, EXDEV, EMLINK).
_NO_ANONYMOUS_FILES = frozenset(
    {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EPERM, errno.EXDEV, errno.EMLINK}
)
