"""The one error the CPL reader raises: a file that cannot be read as a CPL publication, as it is."""

from __future__ import annotations

from flows.errors import BadInput


class CplFormatError(BadInput):
    """The file is not a CPL publication the reader can use; the message says what and where.

    ``sheet``, ``row`` (1-based, as Excel numbers it) and ``column`` (the header as found) are set
    when the problem is in one place.
    """

    def __init__(
        self, message: str, *, sheet: str | None = None, row: int | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.sheet = sheet
        self.row = row
        self.column = column
