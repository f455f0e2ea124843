"""JSON documents (a case, a run, an action's result) kept inside one table entity.

Table storage limits a string property to 64 KiB (32,768 UTF-16 code units) and a whole entity to
1 MiB. A document that fits in one string property is kept as it is, in ``doc``, readable in Storage
Explorer. A longer one (a case with a long timeline, a run with a big trigger) is gzip-compressed and
split across binary properties ``doc0``, ``doc1``, ... of at most 63 KiB each, with their number in
``doc_parts``: up to 14 parts, 882 KiB compressed, which leaves room for the entity's other
properties. JSON of this kind compresses 4-10 times (hashes in evidence do not compress): a case with
2,000 timeline entries is about 470 KB of JSON and 100 KB compressed, two parts; the limit is near
17,000 such entries. Anything bigger is refused with ``DocumentTooLarge`` rather than cut (keeping the
JSON in a blob instead would lift the limit, at the price of a second write that the entity's ETag
does not cover).

Writes replace whole entities (``UpdateMode.REPLACE``), so a document that changes from one form to the
other leaves no stale property behind.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from typing import Any

from adapters.azure_storage._errors import DocumentTooLarge

TEXT_LIMIT = 32_000  # UTF-16 code units in one string property (the service allows 32,768)
PART_BYTES = 63 * 1024  # bytes in one binary property (the service allows 64 KiB)
MAX_PARTS = 14  # 14 x 63 KiB = 882 KiB, under the 1 MiB entity limit with room for the rest


def pack(document: str, *, what: str) -> dict[str, Any]:
    """The properties that hold ``document``; ``what`` names it in the error if it is too large."""
    if len(document.encode("utf-16-le")) // 2 <= TEXT_LIMIT:
        return {"doc": document}
    packed = gzip.compress(document.encode(), compresslevel=6, mtime=0)
    parts = [packed[start : start + PART_BYTES] for start in range(0, len(packed), PART_BYTES)]
    if len(parts) > MAX_PARTS:
        raise DocumentTooLarge(
            f"{what}: {len(document):,} characters of JSON are {len(packed):,} bytes compressed, over "
            f"the {MAX_PARTS * PART_BYTES:,} bytes one table entity can hold"
        )
    return {"doc_parts": len(parts), **{f"doc{number}": part for number, part in enumerate(parts)}}


def unpack(entity: Mapping[str, Any]) -> str:
    """The document kept in ``entity`` by ``pack``."""
    if "doc" in entity:
        return str(entity["doc"])
    parts = int(entity["doc_parts"])
    packed = b"".join(bytes(entity[f"doc{number}"]) for number in range(parts))
    return gzip.decompress(packed).decode()
