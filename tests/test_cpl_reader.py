"""The SECAS CPL reader on real files: the two sample publications, and workbooks and CSV files
written to tmp_path with tests.support.cpl_workbooks."""

from __future__ import annotations

import hashlib
import io
import random
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.secas import CplFormatError, ReaderSettings, read_cpl
from adapters.secas.conversion import convert_column
from adapters.secas.titles import UK
from adapters.secas.values import BLANK, CellError, converter_for
from flows.domain.cpl import CplEntry, CplPublication, CplStatus, EpclStatus, parse_previous_ids
from flows.domain.diff import diff_publications
from flows.errors import BadInput
from tests.support.cpl_workbooks import (
    STANDARD_HEADERS,
    SheetData,
    cpl_table,
    notes_sheet,
    smets2_sheet,
    synthetic_rows,
    write_cpl_csv,
    write_cpl_workbook,
    write_workbook,
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "cpl"


def read(path: Path, settings: ReaderSettings | None = None) -> CplPublication:
    return read_cpl(path.read_bytes(), name=path.name, settings=settings)


def sample(day: str) -> CplPublication:
    return read(SAMPLES / f"cpl-2026-11-{day}.xlsx")


# The two sample publications


def test_sample_publications_parse_their_smets1_rows() -> None:
    first, second = sample("20"), sample("24")

    assert (len(first.entries), len(second.entries)) == (317, 320)
    assert first.published_at == datetime(2026, 11, 20, 9, 0, tzinfo=UK)
    assert second.published_at == datetime(2026, 11, 24, 9, 0, tzinfo=UK)
    assert second.published_at.utcoffset() == timedelta(0)  # GMT in November
    assert first.source_name == "cpl-2026-11-20.xlsx"
    data = (SAMPLES / "cpl-2026-11-20.xlsx").read_bytes()
    assert first.source_sha256 == hashlib.sha256(data).hexdigest()
    assert all(entry.entry_id.startswith("S1-") for entry in first.entries)  # no SMETS2+ rows


def test_sample_emergency_entry_is_read_in_full() -> None:
    entry = sample("20").by_id()["S1-000316"]

    assert entry == CplEntry(
        entry_id="S1-000316",
        device_type="GSME",
        manufacturer_name="Corrie Controls",
        manufacturer_id="10F4",
        model_name="Corrie GSME 2",
        model_id="F4010002",
        hardware_version="0003",
        firmware_version="01020011",
        smets_version="SMETS1",
        s1sp="FOC",
        epcl_status=EpclStatus.NON_EPCL,
        cpl_status=CplStatus.ACTIVE,
        date_added=date(2026, 11, 18),
        previous_entry_ids=("S1-000110",),
        image_hash="4EA21ED919D2E75C52D1D84B0192E08314FAB5627E8412BC64AA7674C2311E13",
        secas_reference="ECPL-2026-0031",
    )
    assert entry.is_emergency
    assert entry.is_loadable


def test_diff_of_the_samples() -> None:
    diff = diff_publications(sample("20"), sample("24"))

    assert [entry.entry_id for entry in diff.added] == ["S1-000318", "S1-000319", "S1-000320"]
    assert all(entry.is_emergency for entry in diff.added)
    assert diff.removed == ()
    assert [change.entry_id for change in diff.changed] == ["S1-000001", "S1-000317"]
    (withdrawn,) = diff.withdrawn
    assert withdrawn.entry_id == "S1-000001"
    assert [(c.field, c.old, c.new) for c in withdrawn.fields] == [
        ("cpl_status", CplStatus.ACTIVE, CplStatus.WITHDRAWN)
    ]
    (promoted,) = diff.promoted
    assert promoted.entry_id == "S1-000317"
    assert [(c.field, c.old, c.new) for c in promoted.fields] == [
        ("epcl_status", EpclStatus.NON_EPCL, EpclStatus.EPCL)
    ]


def test_entries_built_without_validation_are_what_validation_makes(tmp_path: Path) -> None:
    rows = synthetic_rows(200, seed=3)
    rows[0] |= {
        "firmware_version": " 0a\u00a01b ",
        "epcl_status": "non epcl",
        "previous_entry_ids": "S1-1; S1-2",
    }
    rows[1] |= {"image_hash": "", "secas_reference": None, "date_added": None, "previous_entry_ids": "N/A"}
    publications = [sample("20"), sample("24"), read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows))]

    for publication in publications:
        for entry in publication.entries:
            validated = CplEntry.model_validate(entry.model_dump())
            assert validated == entry and repr(validated) == repr(entry)
            assert entry.model_fields_set == set(CplEntry.model_fields)
            assert entry.model_copy(update={"model_name": "x"}).model_name == "x"
            assert type(entry.epcl_status) is EpclStatus
            assert type(entry.cpl_status) is CplStatus


# Layout: sheets, header row and columns found by what they hold


def test_renamed_reordered_columns_under_other_title_rows_in_a_sheet_named_otherwise(tmp_path: Path) -> None:
    rows = synthetic_rows(60, seed=9)
    standard = read(write_cpl_workbook(tmp_path / "standard.xlsx", rows))
    renamed = {
        "entry_id": "Entry ID",
        "manufacturer_id": "Manufacturer ID",
        "model_id": "Model ID",
        "hardware_version": "HW Version",
        "firmware_version": "FW Version",
        "s1sp": "S1SP",
        "previous_entry_ids": "Previous Entry IDs",
        "image_hash": "Image Hash",
        "epcl_status": "epcl-status",
    }
    columns = list(STANDARD_HEADERS)
    random.Random(4).shuffle(columns)
    title_rows = [["SECAS"], [], ["Central Products List: SMETS1 Device Models"]]
    title_rows += [["Published: 3 December 2026 14:30"]]
    path = write_cpl_workbook(
        tmp_path / "other.xlsx",
        rows,
        sheet_name="Devices (S1)",
        title_rows=[*title_rows, [], ["Confidential"], []],
        headers=renamed,
        columns=columns,
        before=[smets2_sheet(30), notes_sheet()],
    )

    publication = read(path)

    assert publication.entries == standard.entries
    assert publication.published_at == datetime(2026, 12, 3, 14, 30, tzinfo=UK)


def test_rows_keyed_by_header_and_no_title_rows(tmp_path: Path) -> None:
    rows = [{STANDARD_HEADERS[field]: value for field, value in row.items()} for row in synthetic_rows(5)]
    path = write_cpl_workbook(tmp_path / "cpl.xlsx", rows, title_rows=())

    publication = read(path)

    assert [entry.entry_id for entry in publication.entries] == [f"S1-{n:06d}" for n in range(1, 6)]
    assert publication.published_at is None


def test_a_sheet_named_smets1_is_preferred_when_several_hold_the_list(tmp_path: Path) -> None:
    archived = synthetic_rows(3, seed=1, first_id=900)
    current = synthetic_rows(4, seed=2)
    archive = SheetData("Archive", cpl_table(archived))
    path = write_cpl_workbook(tmp_path / "cpl.xlsx", current, sheet_name="smets 1 list", before=[archive])

    assert [entry.entry_id for entry in read(path).entries] == [row["entry_id"] for row in current]


def test_two_lists_in_sheets_named_neither_way_is_an_error(tmp_path: Path) -> None:
    table = cpl_table(synthetic_rows(2))
    path = write_workbook(tmp_path / "cpl.xlsx", [SheetData("Current", table), SheetData("Old", table)])

    with pytest.raises(CplFormatError, match=r"several sheets hold a SMETS1 list \('Current', 'Old'\)"):
        read(path)


def test_configured_alias(tmp_path: Path) -> None:
    rows = synthetic_rows(3)
    path = write_cpl_workbook(tmp_path / "cpl.xlsx", rows, headers={"firmware_version": "Firmware Rev."})

    with pytest.raises(CplFormatError, match="required column not found: firmware_version"):
        read(path)
    publication = read(path, ReaderSettings(aliases={"firmware_version": ["firmware rev"]}))
    assert [entry.firmware_version for entry in publication.entries] == [
        row["firmware_version"] for row in rows
    ]


def test_aliases_must_name_known_fields() -> None:
    with pytest.raises(ValidationError, match="unknown fields"):
        ReaderSettings(aliases={"firmware": ["FW"]})


# CSV


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_csv_in_either_encoding(tmp_path: Path, encoding: str) -> None:
    rows = synthetic_rows(20, seed=5)
    rows[0]["manufacturer_name"] = "Société Générale des Compteurs"
    rows[1]["model_name"] = "Fenwick £ESME"
    path = write_cpl_csv(
        tmp_path / "cpl.csv",
        rows,
        encoding=encoding,
        title_rows=[["Central Products List"], ["Published 20 November 2026 09:00"], []],
        date_format="%d/%m/%Y",
    )
    xlsx = read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows))

    publication = read(path)

    assert publication.entries == xlsx.entries
    assert publication.entries[0].manufacturer_name == "Société Générale des Compteurs"
    assert publication.published_at == datetime(2026, 11, 20, 9, 0, tzinfo=UK)
    if encoding == "utf-8-sig":
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")


def test_csv_with_semicolons_and_iso_dates(tmp_path: Path) -> None:
    rows = synthetic_rows(10, seed=6)
    path = write_cpl_csv(tmp_path / "cpl.csv", rows, delimiter=";")

    publication = read(path)

    assert publication.entries == read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows)).entries


# Values


def test_identifiers_are_normalised_and_text_trimmed(tmp_path: Path) -> None:
    row = synthetic_rows(1)[0] | {
        "manufacturer_id": "\u00a00a1b ",
        "model_id": "1b00\u202f0001",
        "hardware_version": " 0003\u00a0",
        "firmware_version": "0a\u00a01b\u00a0cd",
        "image_hash": " ab cd ",
        "device_type": "esme ",
        "s1sp": "\u00a0FOC ",
        "manufacturer_name": " Albion\u00a0 Meters  Ltd ",
    }
    for path in (
        write_cpl_workbook(tmp_path / "cpl.xlsx", [row]),
        write_cpl_csv(tmp_path / "cpl.csv", [row]),
    ):
        (entry,) = read(path).entries

        assert (entry.manufacturer_id, entry.model_id, entry.hardware_version) == ("0A1B", "1B000001", "0003")
        assert (entry.firmware_version, entry.image_hash, entry.device_type) == ("0A1BCD", "ABCD", "ESME")
        assert (entry.s1sp, entry.manufacturer_name) == ("FOC", "Albion Meters Ltd")


def test_leading_zeros_are_kept(tmp_path: Path) -> None:
    rows = synthetic_rows(2)
    rows[0]["firmware_version"] = "0102"
    rows[1]["firmware_version"] = "102"

    entries = read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows)).entries

    assert [entry.firmware_version for entry in entries] == ["0102", "102"]
    assert entries[0].dmc != entries[1].dmc


@pytest.mark.parametrize(
    ("field", "header", "cell", "shown"),
    [
        ("hardware_version", "Hardware Version", 3.0, "3"),  # "0003" typed into a General cell
        ("firmware_version", "Firmware Version", 1020013.0, "1020013"),  # "01020013"
        ("manufacturer_id", "Manufacturer Identifier", 1e7, "10000000"),  # "1E07": Excel reads 1.00E+07
        ("model_id", "Model Identifier", 102, "102"),
        ("device_type", "Device Type", 7.0, "7"),
    ],
)
def test_a_number_in_an_identifier_column_is_refused(
    tmp_path: Path, field: str, header: str, cell: float, shown: str
) -> None:
    """A numeric cell has lost its leading zeros (or its exponent) before the reader sees it: read as
    text it would pair as another device model, and an acceptance would load that into the SMI."""
    rows = synthetic_rows(3)
    rows[1][field] = cell

    with pytest.raises(CplFormatError) as caught:
        read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows))

    message = str(caught.value)
    assert message.startswith(f"cpl.xlsx: sheet 'SMETS1', row 6, column '{header}': the number {shown} ")
    assert "format the column as text" in message
    assert (caught.value.sheet, caught.value.row, caught.value.column) == ("SMETS1", 6, header)


def test_a_fractional_number_is_not_an_identifier(tmp_path: Path) -> None:
    rows = synthetic_rows(2)
    rows[1]["hardware_version"] = 1.5

    with pytest.raises(CplFormatError, match=r"row 6, column 'Hardware Version': the number 1.5"):
        read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows))


@pytest.mark.parametrize(
    ("field", "header", "cell", "says"),
    [
        (  # a Cyrillic capital A: "3А11" looks like the manufacturer 3A11
            "manufacturer_id",
            "Manufacturer Identifier",
            "3\u041011",
            "'3А11' contains a non-ASCII character, U+0410 (CYRILLIC CAPITAL LETTER A), at character 2",
        ),
        (
            "model_id",
            "Model Identifier",
            "F4040002\u200b",
            "'F4040002\\u200b' contains an invisible or control character, U+200B (ZERO WIDTH SPACE), "
            "at character 9",
        ),
        (  # a ligature that upper-cases to "FF": it must not slip in as hex
            "image_hash",
            "Manufacturer Image Hash",
            "\ufb00" + "0" * 62,
            "contains a non-ASCII character, U+FB00 (LATIN SMALL LIGATURE FF), at character 1",
        ),
        ("model_id", "Model Identifier", "F404000G", "'F404000G' is not hexadecimal: 'G' at character 8"),
        (  # versions need not be hex, but are held to what the form allows of any identifier
            "hardware_version",
            "Hardware Version",
            "\uff10003",
            "contains a non-ASCII character, U+FF10 (FULLWIDTH DIGIT ZERO), at character 1",
        ),
        (
            "firmware_version",
            "Firmware Version",
            "0102\u00ad0013",
            "contains an invisible or control character, U+00AD (SOFT HYPHEN), at character 5",
        ),
        (
            "device_type",
            "Device Type",
            "ES\u041cE",
            "contains a non-ASCII character, U+041C (CYRILLIC CAPITAL LETTER EM), at character 3",
        ),
        (
            "secas_reference",
            "SECAS Reference",
            "ECPL-2026\u202e-0031",
            "contains an invisible or control character, U+202E (RIGHT-TO-LEFT OVERRIDE), at character 10",
        ),
    ],
)
def test_a_look_alike_or_invisible_character_in_an_identifier_is_refused(
    tmp_path: Path, field: str, header: str, cell: str, says: str
) -> None:
    """The form refuses these; read from the CPL they showed operators two values that look the same,
    and an acceptance would have loaded non-ASCII into the SMI."""
    rows = synthetic_rows(3)
    rows[2][field] = cell

    for path in (
        write_cpl_workbook(tmp_path / "cpl.xlsx", rows),
        write_cpl_csv(tmp_path / "cpl.csv", rows),
    ):
        with pytest.raises(CplFormatError) as caught:
            read(path)

        assert str(caught.value).startswith(f"{path.name}: sheet {caught.value.sheet!r}, row ")
        assert f"column '{header}': " in str(caught.value)
        assert says in str(caught.value)
        assert caught.value.column == header


def test_versions_need_not_be_hex_but_ids_and_hashes_must_be(tmp_path: Path) -> None:
    rows = synthetic_rows(2)
    rows[0] |= {
        "hardware_version": "v1.0",
        "firmware_version": "2.3-B",
        "model_id": "a0 0f",
        "image_hash": "ab",
    }

    entry = read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows)).entries[0]

    assert (entry.hardware_version, entry.firmware_version) == ("V1.0", "2.3-B")
    assert (entry.model_id, entry.image_hash) == ("A00F", "AB")


@pytest.mark.parametrize(
    ("epcl", "cpl", "expected"),
    [
        ("non epcl", "ACTIVE", (EpclStatus.NON_EPCL, CplStatus.ACTIVE)),
        ("Non-EPCL", "withdrawn", (EpclStatus.NON_EPCL, CplStatus.WITHDRAWN)),
        ("NON-EPCL", " Expired ", (EpclStatus.NON_EPCL, CplStatus.EXPIRED)),
        (" epcl", "Canceled", (EpclStatus.EPCL, CplStatus.CANCELLED)),
    ],
)
def test_statuses_match_loosely(
    tmp_path: Path, epcl: str, cpl: str, expected: tuple[EpclStatus, CplStatus]
) -> None:
    row = synthetic_rows(1)[0] | {"epcl_status": epcl, "cpl_status": cpl}

    (entry,) = read(write_cpl_workbook(tmp_path / "cpl.xlsx", [row])).entries

    assert (entry.epcl_status, entry.cpl_status) == expected
    assert entry.epcl_status is expected[0]


def test_dates_as_cells_or_text(tmp_path: Path) -> None:
    rows = synthetic_rows(4)
    rows[0]["date_added"] = datetime(2026, 11, 18, 10, 30)
    rows[1]["date_added"] = "2026-11-18"
    rows[2]["date_added"] = "18/11/2026"
    rows[3]["date_added"] = ""

    entries = read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows)).entries

    assert [entry.date_added for entry in entries] == [date(2026, 11, 18)] * 3 + [None]


def test_previous_ids_and_optional_blanks(tmp_path: Path) -> None:
    rows = synthetic_rows(3)
    rows[0] |= {"previous_entry_ids": "S1-000110, S1-000111", "image_hash": None, "smets_version": ""}
    rows[1] |= {"previous_entry_ids": "n/a"}
    rows[2] |= {"previous_entry_ids": None}

    entries = read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows)).entries

    assert [entry.previous_entry_ids for entry in entries] == [("S1-000110", "S1-000111"), (), ()]
    assert (entries[0].image_hash, entries[0].smets_version) == ("", "")


@pytest.mark.parametrize(
    "cell",
    [
        "S1-000142\nS1-000143",  # a line break inside the cell (Alt+Enter)
        "S1-000142\r\nS1-000143",
        "S1-000142 S1-000143",
        "S1-000142 / S1-000143",
        "S1-000142/S1-000143",
        "S1-000142;S1-000143",
        " S1-000142 ,\u00a0S1-000143, ",
        "S1-000142\n/ N/A ; S1-000143",
    ],
)
def test_previous_ids_split_on_commas_semicolons_white_space_and_slashes(tmp_path: Path, cell: str) -> None:
    """Read as one unknown id, two predecessors made the notified current firmware a mismatch."""
    rows = synthetic_rows(200, seed=3)  # the rest one id or "N/A" per cell: the column's quick route
    rows[7]["previous_entry_ids"] = cell

    for path in (
        write_cpl_workbook(tmp_path / "cpl.xlsx", rows),
        write_cpl_csv(tmp_path / "cpl.csv", rows),
    ):
        entries = read(path).entries

        assert entries[7].previous_entry_ids == ("S1-000142", "S1-000143")
        assert entries[8].previous_entry_ids == (
            () if rows[8]["previous_entry_ids"] == "N/A" else (rows[8]["previous_entry_ids"],)
        )


def test_an_n_a_placeholder_is_not_split_at_its_slash() -> None:
    assert parse_previous_ids("N/A") == parse_previous_ids(" n/a ") == parse_previous_ids("None") == ()
    assert parse_previous_ids("S1-000001/N/A") == ("S1-000001",)
    assert parse_previous_ids("SN/A1") == ("SN", "A1")  # "N/A" only as a whole token
    assert parse_previous_ids(["S1-000001", " N/A", ""]) == ("S1-000001",)


def test_optional_columns_may_be_missing(tmp_path: Path) -> None:
    required = ["entry_id", "device_type", "manufacturer_name", "manufacturer_id", "model_name", "model_id"]
    required += ["hardware_version", "firmware_version", "s1sp", "epcl_status", "cpl_status"]

    (entry,) = read(write_cpl_workbook(tmp_path / "cpl.xlsx", synthetic_rows(1), columns=required)).entries

    assert (entry.date_added, entry.previous_entry_ids, entry.image_hash, entry.secas_reference) == (
        None,
        (),
        "",
        "",
    )


def test_blank_rows_are_skipped(tmp_path: Path) -> None:
    rows = synthetic_rows(4)
    blank_ish = dict.fromkeys(rows[0], "\u00a0 ")
    bad = rows[3] | {"cpl_status": "Suspended"}
    path = write_cpl_workbook(tmp_path / "cpl.xlsx", [rows[0], {}, rows[1], blank_ish, rows[2], {}, {}])

    assert [entry.entry_id for entry in read(path).entries] == [row["entry_id"] for row in rows[:3]]
    # Row numbers still count the blank rows: 3 title rows, the header, then rows 5 to 10.
    path = write_cpl_workbook(tmp_path / "bad.xlsx", [rows[0], {}, {}, rows[1], {}, bad])
    with pytest.raises(CplFormatError, match="row 10,"):
        read(path)


# Errors: what is wrong and where


def test_a_missing_required_column_is_named(tmp_path: Path) -> None:
    columns = [field for field in STANDARD_HEADERS if field != "model_id"]
    path = write_cpl_workbook(tmp_path / "cpl.xlsx", synthetic_rows(2), columns=columns)

    with pytest.raises(CplFormatError) as caught:
        read(path)

    message = str(caught.value)
    assert "sheet 'SMETS1': required column not found: model_id" in message
    assert "'Model Identifier'" in message
    assert "headers found in row 4: 'CPL Entry ID', 'Device Type'" in message
    assert isinstance(caught.value, BadInput)


def test_an_invalid_status_names_sheet_row_and_column(tmp_path: Path) -> None:
    rows = synthetic_rows(5)
    rows[2]["epcl_status"] = "Maybe"
    path = write_cpl_workbook(tmp_path / "cpl.xlsx", rows, sheet_name="SMETS1 devices")

    with pytest.raises(CplFormatError) as caught:
        read(path)

    assert str(caught.value) == (
        "cpl.xlsx: sheet 'SMETS1 devices', row 7, column 'EPCL Status': "
        "unknown EPCL status 'Maybe' (expected one of: EPCL, Non-EPCL)"
    )
    assert (caught.value.sheet, caught.value.row, caught.value.column) == ("SMETS1 devices", 7, "EPCL Status")


def test_the_first_bad_row_is_reported(tmp_path: Path) -> None:
    rows = synthetic_rows(6)
    rows[4]["cpl_status"] = "Gone"
    rows[2]["epcl_status"] = "Pending"
    rows[5]["entry_id"] = " "

    with pytest.raises(CplFormatError, match=r"row 7, column 'EPCL Status': unknown EPCL status 'Pending'"):
        read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows))


def test_an_unreadable_date_added_is_left_out_and_reported_not_the_cpl_refused(tmp_path: Path) -> None:
    """No rule reads Date Added: one typed wrong must not hold back every entry of the publication (an
    emergency one among them) until SECAS mends its file, nor drop its row, which would read as a
    removed entry. The row is kept without a date, and the cell is reported with the publication."""
    rows = synthetic_rows(6)
    rows[2]["date_added"] = "31/02/2026"
    rows[4]["date_added"] = "31/02/2026"
    rows[3]["date_added"] = "TBC"

    publication = read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows))
    assert [entry.entry_id for entry in publication.entries] == [row["entry_id"] for row in rows]
    assert [entry.date_added is None for entry in publication.entries] == [
        False, False, True, True, True, False
    ]  # fmt: skip
    assert publication.unread == (
        "sheet 'SMETS1', row 7, column 'Date Added': '31/02/2026' is not a date "
        "(expected e.g. 2026-11-18 or 18/11/2026), read as no date (also in 1 more row)",
        "sheet 'SMETS1', row 8, column 'Date Added': 'TBC' is not a date "
        "(expected e.g. 2026-11-18 or 18/11/2026), read as no date",
    )


def test_a_blank_required_value_is_an_error(tmp_path: Path) -> None:
    rows = synthetic_rows(3)
    rows[1]["firmware_version"] = "\u00a0"

    with pytest.raises(CplFormatError, match="row 6, column 'Firmware Version': blank"):
        read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows))


def test_a_repeated_entry_id_is_an_error(tmp_path: Path) -> None:
    rows = synthetic_rows(3)
    rows[2]["entry_id"] = rows[0]["entry_id"]

    says = r"row 7, column 'CPL Entry ID': entry id 'S1-000001' appears again \(first in row 5\)"
    with pytest.raises(CplFormatError, match=says):
        read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows))


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (random.Random(1).randbytes(4096), "not a CPL workbook: neither an xlsx workbook"),
        (
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
            "looks like a PDF document",
        ),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "Excel 97-2003"),
        (b"", "the file is empty"),
        (
            b"\xef\xbb\xbf\r\n  <!DOCTYPE html>\n<html lang='en'><head><title>Sign in</title></head>",
            "it is an HTML page",
        ),
        (b"<!-- proxy -->\n<HTML>\n<BODY>Access denied</BODY></HTML>", "it is an HTML page"),
    ],
)
def test_a_file_that_is_not_a_workbook(data: bytes, says: str) -> None:
    with pytest.raises(CplFormatError, match=says):
        read_cpl(data, name="upload.bin")


def test_a_zip_that_is_not_a_workbook() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")

    with pytest.raises(CplFormatError, match="a zip archive that is not a readable xlsx workbook"):
        read_cpl(buffer.getvalue())


def test_a_sheet_without_a_header_row(tmp_path: Path) -> None:
    data_only = [list(row.values()) for row in synthetic_rows(5)]
    path = write_workbook(
        tmp_path / "cpl.xlsx", [SheetData("SMETS1", [["Central Products List"], [], *data_only])]
    )

    with pytest.raises(CplFormatError, match="sheet 'SMETS1' has no header row: none of its first 30 rows"):
        read(path)


def test_a_csv_without_a_header_row(tmp_path: Path) -> None:
    path = tmp_path / "cpl.csv"
    path.write_text("S1-000001,ESME,Albion,0A1B\nS1-000002,ESME,Albion,0A1B\n", encoding="utf-8")

    with pytest.raises(CplFormatError, match="sheet 'CSV' has no header row"):
        read(path)


def test_no_smets1_list_lists_the_sheets_seen(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "cpl.xlsx", [smets2_sheet(5), notes_sheet()])

    with pytest.raises(CplFormatError) as caught:
        read(path)

    message = str(caught.value)
    assert message.startswith("cpl.xlsx: no SMETS1 list found")
    assert "'SMETS1 Service Provider' and 'EPCL Status'" in message
    assert "sheets seen: 'SMETS2+' (headers: CPL Entry ID, Device Type," in message
    assert message.endswith("; 'Notes'")


def test_an_oversized_file_is_refused_before_it_is_read() -> None:
    data = (SAMPLES / "cpl-2026-11-20.xlsx").read_bytes()

    with pytest.raises(CplFormatError, match=r"over the limit of 1,000 bytes"):
        read_cpl(data, settings=ReaderSettings(max_bytes=1000))
    assert ReaderSettings().max_bytes == 50 * 1024 * 1024


# The column-at-once conversions give what converting each cell gives


@pytest.mark.parametrize("field", list(STANDARD_HEADERS))
@pytest.mark.parametrize(
    "column",
    [
        ("0A1B", "0A1B", "1B000001", "S1-000001"),
        ("0a1b", "0A1B", "abc"),
        ("\u00a0FOC ", "FOC", "IOC"),
        ("S1-000001", "N/A", "none", "-", "S1-000002"),
        ("S1-000001, S1-000002", "S1-000003"),
        ("S1-000001", "N/A", "n/a", "S1-000002/S1-000003"),
        ("S1-000001/S1-000002", "N/A"),
        ("S1-000001 S1-000002", "S1-000003\nS1-000004", "n/A"),
        ("S1-000001N/A", "N/A"),
        ("Albion Meters Ltd", "Albion"),
        ("EPCL", "Non-EPCL", " non epcl "),
        ("Active", "WITHDRAWN"),
        ("2026-11-18", "18/11/2026"),
        ("X", "", "  "),
        ("ÄB", "0102"),
        ("3\u041011", "0A1B", "F4040002\u200b"),
        ("0a1b", "G1", "ab", "AB"),
        ("0A1B", "\ufb00"),
        (date(2026, 1, 2), "2026-01-02"),
        (102.0, "0102"),
    ],
)
def test_columns_convert_as_their_cells_do(field: str, column: tuple[object, ...]) -> None:
    table = convert_column(field, column)
    convert = converter_for(field)

    for value in column:
        reason: str | None = None
        try:
            expected = convert(value)
        except CellError as error:
            reason = str(error)
        assert table.problems.get(value) == reason
        if reason is not None:
            continue
        if table.unchanged:
            assert expected == value
            assert type(expected) is type(value)
        elif expected is BLANK:
            assert value in table.blanks
        else:
            assert table.converted[value] == expected
            assert type(table.converted[value]) is type(expected)


def test_of_two_columns_for_one_field_the_better_spelling_wins(tmp_path: Path) -> None:
    rows = [row | {"Type": "meter"} for row in synthetic_rows(2)]  # "Type" could mean device type

    entries = read(write_cpl_workbook(tmp_path / "cpl.xlsx", rows)).entries

    assert [entry.device_type for entry in entries] == [row["device_type"] for row in rows]


def test_the_same_header_twice_is_an_error(tmp_path: Path) -> None:
    rows = synthetic_rows(2)
    path = write_cpl_workbook(tmp_path / "cpl.xlsx", rows, headers={"smets_version": "Firmware Version"})

    with pytest.raises(CplFormatError, match=r"several columns read as the same field \(firmware_version: "):
        read(path)


def test_a_list_with_no_rows_has_no_entries(tmp_path: Path) -> None:
    assert read(write_cpl_workbook(tmp_path / "cpl.xlsx", [])).entries == ()


def test_a_summer_publication_time_is_british_summer_time() -> None:
    from adapters.secas.titles import published_at

    summer = published_at([["Central Products List"], ["Published 1 July 2026 09:00"]])
    assert summer is not None
    assert summer.utcoffset() == timedelta(hours=1)


# The quick routes give what the plain ones give


def test_previous_ids_one_per_cell_read_as_validation_makes(tmp_path: Path) -> None:
    rows = synthetic_rows(300, seed=8)  # each names one predecessor or "N/A": read a column at once
    rows[5]["previous_entry_ids"] = "none"
    rows[6]["previous_entry_ids"] = "n/A"
    path = write_cpl_workbook(tmp_path / "cpl.xlsx", rows)

    publication = read(path)

    cells = tuple(str(row["previous_entry_ids"]) for row in rows)
    assert {cell.upper() for cell in cells} >= {"N/A", "NONE"}
    assert convert_column("previous_entry_ids", cells).one_token_each
    for entry, row in zip(publication.entries, rows, strict=True):
        validated = CplEntry.model_validate(entry.model_dump())
        assert validated == entry and repr(validated) == repr(entry)
        text = str(row["previous_entry_ids"])
        assert entry.previous_entry_ids == (() if text.upper() in {"N/A", "NONE"} else (text,))
    assert publication == CplPublication(
        source_sha256=publication.source_sha256,
        source_name=publication.source_name,
        published_at=publication.published_at,
        entries=publication.entries,
    )
    assert list(publication.by_id()) == [entry.entry_id for entry in publication.entries]


def test_the_diff_finds_what_entry_equality_finds(tmp_path: Path) -> None:
    rows = synthetic_rows(120, seed=4)
    old = read(write_cpl_workbook(tmp_path / "old.xlsx", rows[:100]))
    changed = [row | {"firmware_version": "FF01"} if i % 7 == 0 else row for i, row in enumerate(rows)]
    new = read(write_cpl_workbook(tmp_path / "new.xlsx", changed[10:]))

    class Marked(CplEntry):  # equal fields, but another class: never equal to a CplEntry
        pass

    marked = CplPublication(
        source_sha256="x", entries=tuple(Marked(**entry.model_dump()) for entry in new.entries)
    )
    for before, after in ((old, new), (new, old), (old, marked), (None, new)):
        diff = diff_publications(before, after)
        earlier = before.by_id() if before is not None else {}
        later = after.by_id()
        assert diff.added == tuple(entry for key, entry in later.items() if key not in earlier)
        assert diff.removed == tuple(entry for key, entry in earlier.items() if key not in later)
        expected = [key for key, entry in later.items() if key in earlier and earlier[key] != entry]
        assert [change.entry_id for change in diff.changed] == expected
    assert len(diff_publications(old, marked).changed) == 90


def test_the_quick_cell_span_never_understates_the_exact_one() -> None:
    from adapters.secas.cell_span import scan_cell_span

    spellings = [
        '<c r="{ref}"/>',
        '<c r="{ref}"><v>1</v></c>',
        "<c r='{ref}'/>",
        '<c  r="{ref}"/>',
        '<c t="s" r="{ref}"/>',
        '<c r="{lower}"/>',
        '<c r="{ref}" r="{other}"/>',
        '<c r="{bad}" r="{other}"/>',
        '<x:c r="{ref}"/>',
        "<c/>",
        '<c\tr="{ref}"/>',
        '<cols><col min="1"/></cols>',
        '<row r="{row}">',
        "</row>",
        "<row>",
        '<row r="{bad}" r="{row}">',
        '<t>r="{ref}"</t>',
        '<![CDATA[<c r="{ref}"/>]]>',
        "<rowBreaks/>",
    ]
    rng = random.Random(12)

    def ref() -> str:
        letters = "".join(rng.choice("ABXZ") for _ in range(rng.choice([1, 1, 2, 3])))
        return letters + str(rng.choice([1, 99999, 100000, 1048576, rng.randint(1, 2_000_000)]))

    for _ in range(2000):
        xml = "".join(
            rng.choice(spellings).format(
                ref=ref(),
                other=ref(),
                lower=ref().lower(),
                bad=rng.choice(["A", "AAAA1", "A123456789"]),
                row=rng.choice([1, 99999, 100000, 1048576]),
            )
            for _ in range(rng.randint(1, 20))
        ).encode()
        quick = scan_cell_span(xml, deflated=False, limit=len(xml))
        exact = scan_cell_span(xml, deflated=False, limit=len(xml), exact=True)
        assert quick.rows >= exact.rows and quick.columns >= exact.columns, xml
