"""How fast a 100,000-row CPL is read and compared, against python-calamine's raw read of the sheet.

Generates (in a child process, so its memory does not count) a CPL workbook of ROWS SMETS1 rows with a
SMETS2+ decoy sheet in front of it, and a previous publication (CSV) differing in a few hundred rows.
Then, in this process, times (best of REPEATS, time.perf_counter):

- raw: ``CalamineWorkbook.from_path(p).get_sheet_by_name("SMETS1").to_python()``;
- parse_diff: ``read_cpl(p.read_bytes())`` + ``diff_publications(previous, new)``;

alternately, each after a full garbage collection, with the previous publication held in memory.

Prints a human line, then last exactly one JSON line. Exits 1 if parse_diff / raw exceeds TARGET.
Peak memory is this process's peak resident set size from ``resource.getrusage(RUSAGE_SELF)``: the
previous publication, the raw reads and the parse+diff runs (not the generation).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from python_calamine import CalamineWorkbook

from adapters.secas import read_cpl
from flows.domain.diff import diff_publications
from tests.support.cpl_workbooks import (
    notes_sheet,
    smets2_sheet,
    synthetic_rows,
    vary_rows,
    write_cpl_csv,
    write_cpl_workbook,
)

ROWS = 100_000
CHANGES = 300
DROPPED = 40
DECOY_ROWS = 10_000
REPEATS = 7
TARGET = 2.0
SHEET = "SMETS1"


def generate(folder: Path) -> None:
    """The new publication (xlsx) and the previous one (CSV: quicker to write, read the same way)."""
    rows = synthetic_rows(ROWS, seed=2026)
    write_cpl_workbook(
        folder / "cpl-new.xlsx", rows, before=[smets2_sheet(DECOY_ROWS, seed=7)], after=[notes_sheet()]
    )
    write_cpl_csv(folder / "cpl-previous.csv", vary_rows(rows, CHANGES, seed=11, drop_last=DROPPED))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cpl-bench-") as name:
        folder = Path(name)
        started = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=generate, args=(folder,))
        child.start()
        child.join()
        if child.exitcode != 0:
            print(f"generating the workbooks failed (exit code {child.exitcode})", file=sys.stderr)
            return 2
        generated_s = time.perf_counter() - started
        new_path = folder / "cpl-new.xlsx"
        previous = read_cpl((folder / "cpl-previous.csv").read_bytes(), name="cpl-previous.csv")

        raw_times: list[float] = []
        ours_times: list[float] = []
        summary: dict[str, list[str]] = {}
        for _ in range(REPEATS):
            gc.collect()  # both timings start from the same collector state
            started = time.perf_counter()
            cells = CalamineWorkbook.from_path(new_path).get_sheet_by_name(SHEET).to_python()
            raw_times.append(time.perf_counter() - started)
            del cells
            gc.collect()
            started = time.perf_counter()
            new = read_cpl(new_path.read_bytes(), name=new_path.name)
            diff = diff_publications(previous, new)
            ours_times.append(time.perf_counter() - started)
            summary = diff.summary()
            assert len(new.entries) == ROWS, len(new.entries)
            del new, diff
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    raw_s, parse_diff_s = min(raw_times), min(ours_times)
    ratio = parse_diff_s / raw_s
    assert len(summary["added"]) == DROPPED, summary["added"][:5]
    assert len(summary["changed"]) == CHANGES, len(summary["changed"])
    print(
        f"cpl_parse: {ROWS:,} rows; raw calamine read {raw_s:.2f} s, read_cpl + diff {parse_diff_s:.2f} s "
        f"(ratio {ratio:.2f}, target {TARGET}); diff: {len(summary['added'])} added, "
        f"{len(summary['changed'])} changed; peak RSS {peak_mib:.0f} MiB; generation {generated_s:.0f} s"
    )
    result = {
        "bench": "cpl_parse",
        "rows": ROWS,
        "ratio": round(ratio, 3),
        "target": TARGET,
        "peak_mib": round(peak_mib, 1),
        "peak_via": "resource.getrusage(RUSAGE_SELF).ru_maxrss",
        "raw_s": round(raw_s, 3),
        "parse_diff_s": round(parse_diff_s, 3),
        "repeats": REPEATS,
    }
    print(json.dumps(result))
    return 1 if ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
