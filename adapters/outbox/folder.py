"""An outbox folder: one file per idempotency key, written atomically and never overwritten."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path

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
    """A folder of outgoing messages, created on first use."""

    def __init__(self, root: str | os.PathLike[str], *, suffix: str) -> None:
        self.root = Path(root)
        self.suffix = suffix
        self._lock = threading.Lock()  # only for file systems without hard links (see ``write_once``)

    def path_for(self, key: str) -> Path:
        return self.root / f"{safe_file_stem(key)}{self.suffix}"

    def write_once(self, key: str, content: bytes) -> tuple[Path, bool]:
        """Write ``content`` as the key's file unless it exists; whether this call wrote it.

        The bytes go to a temporary file in the same folder, flushed to disk, which then takes the
        final name in one step, so a reader never sees half a message. The final name is taken with
        ``os.link``, which fails if the name exists, so two writers racing for a key cannot both win
        (``os.replace`` would let the second overwrite the first). Where hard links are not supported,
        ``os.replace`` is used under a lock, which covers threads in this process.
        """
        target = self.path_for(key)
        if target.exists():
            return target, False
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temporary_name = tempfile.mkstemp(dir=self.root, prefix=".writing-", suffix=".tmp")
        temporary = Path(temporary_name)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(content)
                stream.flush()
                os.fsync(stream.fileno())
            return target, self._publish(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

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
