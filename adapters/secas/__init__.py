"""The SECAS Central Products List as published: an xlsx (or CSV) file read into a ``CplPublication``.

    from adapters.secas import read_cpl, ReaderSettings
    publication = read_cpl(data, name="cpl-2026-11-20.xlsx")
    read_cpl(data, settings=ReaderSettings(aliases={"firmware_version": ["Firmware Rev"]}))

Every failure is a ``CplFormatError`` (a ``flows.errors.BadInput``) that says what is wrong and where.
"""

from adapters.secas.columns import CANONICAL_FIELDS, DEFAULT_ALIASES, REQUIRED_FIELDS
from adapters.secas.errors import CplFormatError
from adapters.secas.reader import read_cpl
from adapters.secas.settings import ReaderSettings

__all__ = [
    "CANONICAL_FIELDS",
    "DEFAULT_ALIASES",
    "REQUIRED_FIELDS",
    "CplFormatError",
    "ReaderSettings",
    "read_cpl",
]
