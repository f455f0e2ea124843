"""What the CPL reader can be told: extra header spellings and the limits it works within."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.secas.columns import CANONICAL_FIELDS

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024


class ReaderSettings(BaseModel):
    """Settings of the SECAS CPL reader.

    ``aliases`` maps a canonical field (a ``CplEntry`` field name such as ``firmware_version``) to
    extra header spellings, merged over the defaults in ``adapters.secas.columns``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    aliases: dict[str, list[str]] = Field(default_factory=dict)
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0)
    max_uncompressed_bytes: int = Field(default=DEFAULT_MAX_UNCOMPRESSED_BYTES, gt=0)
    """What all parts of an xlsx may inflate to, as its zip directory declares (checked before parsing)."""
    max_ratio: int = Field(default=200, gt=0)
    """How many times a part over 1 MiB may inflate: more is a zip bomb."""
    max_sheet_cells: int = Field(default=10_000_000, gt=0)
    """How many cells (rows x columns) a worksheet's declared dimension may span."""
    header_scan_rows: int = Field(default=30, gt=0)
    """How many rows from the top of a sheet may hold the header row (title rows above it)."""

    @field_validator("aliases")
    @classmethod
    def _known_fields(cls, aliases: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(aliases) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"aliases for unknown fields {unknown}; known fields: {list(CANONICAL_FIELDS)}")
        return aliases
