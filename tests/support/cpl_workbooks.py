"""CPL files written for tests and the benchmark, shaped like the SECAS publication: title rows, a
header row and the SMETS1 list, with decoy sheets (SMETS2+, Notes) around it.

Rows are dicts keyed by canonical field (``"firmware_version"``) or by a header as it should appear
(``"FW Version"``); ``headers`` renames canonical fields and ``columns`` fixes the order.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import xlsxwriter

Cell = str | int | float | bool | date | datetime | None
Row = Mapping[str, Cell]

STANDARD_HEADERS: dict[str, str] = {
    "entry_id": "CPL Entry ID",
    "device_type": "Device Type",
    "manufacturer_name": "Manufacturer Name",
    "manufacturer_id": "Manufacturer Identifier",
    "model_name": "Model Name",
    "model_id": "Model Identifier",
    "hardware_version": "Hardware Version",
    "firmware_version": "Firmware Version",
    "smets_version": "SMETS/CHTS Version",
    "s1sp": "SMETS1 Service Provider",
    "epcl_status": "EPCL Status",
    "cpl_status": "CPL Status",
    "date_added": "Date Added",
    "previous_entry_ids": "Previous CPL Entry IDs",
    "image_hash": "Manufacturer Image Hash",
    "secas_reference": "SECAS Reference",
}
SMETS1_COLUMNS = tuple(STANDARD_HEADERS)
DEFAULT_TITLE_ROWS: tuple[tuple[Cell, ...], ...] = (
    ("Central Products List",),
    ("Published 20 November 2026 09:00",),
    (),
)
# Above this many rows, XlsxWriter streams rows to disk (constant_memory) instead of holding the sheet.
_STREAMING_ROWS = 5_000

MANUFACTURERS = (
    ("Albion Meters Ltd", "0A1B"),
    ("Brightwater Metering", "2C05"),
    ("Corrie Controls", "10F4"),
    ("Dunmore Devices", "1E07"),
    ("Everleigh Systems", "08D2"),
    ("Fenwick Gas Technologies", "3A11"),
)
SMETS1_DEVICE_TYPES = ("ESME", "GSME", "CHF", "GPF", "PPMID")


@dataclass(frozen=True)
class SheetData:
    """One sheet as plain rows, written as given (strings stay strings, dates get a date format)."""

    name: str
    rows: Sequence[Sequence[Cell]]


def cpl_table(
    rows: Sequence[Row],
    *,
    headers: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
) -> list[list[Cell]]:
    """The header row followed by one list of cells per row."""
    names = {**STANDARD_HEADERS, **(headers or {})}
    if columns is None:
        seen = dict.fromkeys(key for row in rows for key in row) or dict.fromkeys(SMETS1_COLUMNS)
        columns = [key for key in SMETS1_COLUMNS if key in seen]
        columns += [key for key in seen if key not in STANDARD_HEADERS]
    table: list[list[Cell]] = [[names.get(key, key) for key in columns]]
    table.extend([row.get(key) for key in columns] for row in rows)
    return table


def write_workbook(path: Path, sheets: Sequence[SheetData], *, constant_memory: bool | None = None) -> Path:
    """An xlsx with the given sheets in order; streamed to disk when the sheets are big."""
    if constant_memory is None:
        constant_memory = sum(len(sheet.rows) for sheet in sheets) > _STREAMING_ROWS
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": constant_memory})
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    time_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    for sheet in sheets:
        worksheet = workbook.add_worksheet(sheet.name)
        for r, cells in enumerate(sheet.rows):
            for c, value in enumerate(cells):
                if value is None:
                    continue
                if isinstance(value, str):
                    worksheet.write_string(r, c, value)
                elif isinstance(value, bool):
                    worksheet.write_boolean(r, c, value)
                elif isinstance(value, datetime):
                    worksheet.write_datetime(r, c, value, time_format)
                elif isinstance(value, date):
                    worksheet.write_datetime(r, c, value, date_format)
                else:
                    worksheet.write_number(r, c, value)
    workbook.close()
    return path


def write_cpl_workbook(
    path: Path,
    rows: Sequence[Row],
    *,
    sheet_name: str = "SMETS1",
    title_rows: Sequence[Sequence[Cell]] = DEFAULT_TITLE_ROWS,
    headers: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    before: Sequence[SheetData] = (),
    after: Sequence[SheetData] = (),
    constant_memory: bool | None = None,
) -> Path:
    """A CPL workbook: ``before`` sheets, the SMETS1 list (title rows, header, rows), ``after`` sheets."""
    table = cpl_table(rows, headers=headers, columns=columns)
    cpl_sheet = SheetData(sheet_name, [*title_rows, *table])
    return write_workbook(path, [*before, cpl_sheet, *after], constant_memory=constant_memory)


def write_cpl_csv(
    path: Path,
    rows: Sequence[Row],
    *,
    encoding: str = "utf-8-sig",
    title_rows: Sequence[Sequence[Cell]] = (),
    headers: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    delimiter: str = ",",
    date_format: str = "%Y-%m-%d",
) -> Path:
    """The SMETS1 list as CSV text in the given encoding (``utf-8-sig`` writes a BOM)."""

    def text(value: Cell) -> str:
        if value is None:
            return ""
        if isinstance(value, date):
            return value.strftime(date_format)
        return str(value)

    with path.open("w", encoding=encoding, newline="") as stream:
        writer = csv.writer(stream, delimiter=delimiter)
        for cells in [*title_rows, *cpl_table(rows, headers=headers, columns=columns)]:
            writer.writerow([text(value) for value in cells])
    return path


def synthetic_rows(count: int, *, seed: int = 0, first_id: int = 1) -> list[dict[str, Cell]]:
    """``count`` realistic SMETS1 rows keyed by canonical field, the same for the same seed.

    Device models get successive firmware versions, each entry naming the model's previous entry;
    a few per cent are Non-EPCL (with a SECAS reference) or no longer active.
    """
    rng = random.Random(seed)
    models = []
    for number in range(max(1, count // 8)):
        name, manufacturer_id = rng.choice(MANUFACTURERS)
        type_index = rng.randrange(len(SMETS1_DEVICE_TYPES))
        device_type = SMETS1_DEVICE_TYPES[type_index]
        models.append(
            (
                device_type,
                name,
                manufacturer_id,
                f"{name.split()[0]} {device_type} {number + 1}",
                f"{manufacturer_id[2:]}{type_index + 1:02X}{number + 1:04X}",
                rng.choice(("0001", "0002", "0003", "0100")),
            )
        )
    last_entry: dict[int, str] = {}
    firmware_count: dict[int, int] = {}
    rows: list[dict[str, Cell]] = []
    for index in range(count):
        entry_id = f"S1-{first_id + index:06d}"
        model = rng.randrange(len(models))
        device_type, name, manufacturer_id, model_name, model_id, hardware = models[model]
        release = firmware_count.get(model, 0)
        firmware_count[model] = release + 1
        emergency = rng.random() < 0.03
        status_roll = rng.random()
        status = "Active" if status_roll < 0.9 else "Withdrawn" if status_roll < 0.95 else "Expired"
        rows.append(
            {
                "entry_id": entry_id,
                "device_type": device_type,
                "manufacturer_name": name,
                "manufacturer_id": manufacturer_id,
                "model_name": model_name,
                "model_id": model_id,
                "hardware_version": hardware,
                "firmware_version": f"01{release // 256:02X}{release % 256:04X}",
                "smets_version": "SMETS1",
                "s1sp": rng.choice(("FOC", "IOC", "MOC")),
                "epcl_status": "Non-EPCL" if emergency else "EPCL",
                "cpl_status": status,
                "date_added": date(2019, 1, 1) + timedelta(days=index * 2800 // max(count, 1)),
                "previous_entry_ids": last_entry.get(model, "N/A"),
                "image_hash": hashlib.sha256(f"{seed}:{entry_id}".encode()).hexdigest().upper(),
                "secas_reference": f"ECPL-2026-{index % 10_000:04d}" if emergency else "",
            }
        )
        last_entry[model] = entry_id
    return rows


def vary_rows(
    rows: Sequence[Row], changes: int, *, seed: int = 0, drop_last: int = 0
) -> list[dict[str, Cell]]:
    """A copy of ``rows`` with ``changes`` rows altered (status, EPCL status or firmware) and the last
    ``drop_last`` rows left out: an earlier or later publication of the same list."""
    rng = random.Random(seed)
    varied = [dict(row) for row in rows[: len(rows) - drop_last]]
    for index in rng.sample(range(len(varied)), min(changes, len(varied))):
        row = varied[index]
        kind = index % 3
        if kind == 0:
            row["cpl_status"] = "Withdrawn" if row["cpl_status"] == "Active" else "Active"
        elif kind == 1:
            row["epcl_status"] = "EPCL" if row["epcl_status"] == "Non-EPCL" else "Non-EPCL"
        else:
            row["firmware_version"] = f"FF{index:06X}"
    return varied


def smets2_sheet(count: int = 50, *, seed: int = 0, name: str = "SMETS2+") -> SheetData:
    """A SMETS2+ list (no S1SP or EPCL columns) that a reader must leave alone."""
    headers = [
        "CPL Entry ID",
        "Device Type",
        "Manufacturer Name",
        "Manufacturer Identifier",
        "Model Name",
        "Model Identifier",
        "Hardware Version",
        "Firmware Version",
        "SMETS/CHTS Version",
        "GBCS Version",
        "CPA Certificate Expiry Date",
        "CPL Status",
        "Date Added",
        "Previous CPL Entry IDs",
        "Manufacturer Image Hash",
    ]
    rows: list[Sequence[Cell]] = [("Central Products List",), ("SMETS2+ devices",), (), headers]
    for source in synthetic_rows(count, seed=seed):
        entry_id = str(source["entry_id"]).replace("S1-", "S2-")
        rows.append(
            [
                entry_id,
                source["device_type"],
                source["manufacturer_name"],
                source["manufacturer_id"],
                source["model_name"],
                source["model_id"],
                source["hardware_version"],
                source["firmware_version"],
                "V5.1",
                "4.0",
                date(2032, 12, 13),
                source["cpl_status"],
                source["date_added"],
                str(source["previous_entry_ids"]).replace("S1-", "S2-"),
                source["image_hash"],
            ]
        )
    return SheetData(name, rows)


def notes_sheet(name: str = "Notes") -> SheetData:
    return SheetData(
        name,
        [
            ["Notes"],
            ["EPCL Status 'Non-EPCL' marks a SMETS1 Device Model added through the emergency route."],
        ],
    )
