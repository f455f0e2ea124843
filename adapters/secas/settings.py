"""What the CPL reader can be told: extra header spellings and the limits it works within."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.secas.columns import CANONICAL_FIELDS

DEFAULT_MAX_BYTES = 50 * 1024 * 1024


class ReaderSettings(BaseModel):
    """Settings of the SECAS CPL reader.

    ``aliases`` maps a canonical field (a ``CplEntry`` field name such as ``firmware_version``) to
    extra header spellings, merged over the defaults in ``adapters.secas.columns``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    aliases: dict[str, list[str]] = Field(default_factory=dict)
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0)
    header_scan_rows: int = Field(default=30, gt=0)
    """How many rows from the top of a sheet may hold the header row (title rows above it)."""

    @field_validator("aliases")
    @classmethod
    def _known_fields(cls, aliases: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(aliases) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"aliases for unknown fields {unknown}; known fields: {list(CANONICAL_FIELDS)}")
        return aliases
