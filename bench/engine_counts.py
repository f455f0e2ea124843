"""What a bench case costs in countable work: Python function calls, SQL statements, commits, file opens.

``bench/engine.py`` times cases; on a shared 2-core machine the same code measured 2-3 times apart
from one run to the next. These counts do not move with the load, so they show whether a change did
less work even when the clock cannot. One process, on the embedded store, under ``cProfile``; the
first drain (in its own home) warms imports and caches, the second is counted.
Prints, last, one JSON line: {"bench": "engine_counts", "cases": 200, "calls": ..., "sql": ...,
"commits": ..., "transactions": ..., "file_opens": ...}, each a case. ``commits`` counts calls of
``Connection.commit`` (transactions opened with ``BEGIN IMMEDIATE``); ``transactions`` adds the
statements committed alone (``BridgeDatabase.write_one`` outside a transaction): every one takes the
writers' lock, and empties the page cache of every other process on the file.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import NOW, synthetic
from flows.bootstrap import bootstrap
from flows.cli import positive_number
from flows.domain.cpl import CplPublication
from flows.service import Message
from flows.settings import Settings

# How cProfile names the C functions counted (``pstats`` keys: file, line, name).
SQL = {
    "<method 'execute' of 'sqlite3.Connection' objects>",
    "<method 'executemany' of 'sqlite3.Connection' objects>",
}
COMMIT = "<method 'commit' of 'sqlite3.Connection' objects>"
COMMITTED = "_committed"  # BridgeDatabase: once per transaction committed, either kind
OPEN = "<built-in method posix.open>"


def drained(home: Path, count: int, profile: cProfile.Profile | None) -> None:
    """Queue ``count`` synthetic cases in a fresh home and drain them, profiling only the drain."""
    made = [synthetic(index) for index in range(count)]
    entries = tuple(entry for _, emergency, previous in made for entry in (previous, emergency))
    publication = CplPublication(source_sha256="bench", source_name="bench.xlsx", entries=entries)
    with bootstrap(Settings(home=home), clock=lambda: NOW) as app:
        app.publications.add(publication, fetched_at=NOW, source="bench")
        for response, _, _ in made:
            body = {"response_id": str(response["responseId"]), "payload": response}
            app.bridge.submit(Message(type="form_response", body=body))
        if profile is not None:
            profile.enable()
        try:
            app.bridge.drain()
        finally:
            if profile is not None:
                profile.disable()


def counts(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-counts-") as folder:
        drained(Path(folder) / "warm", count, None)
        profile = cProfile.Profile()
        drained(Path(folder) / "counted", count, profile)
    # pstats keeps its table untyped: (file, line, name) -> (primitive calls, calls, ...)
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def calls(wanted: set[str]) -> float:
        return float(sum(row[1] for (_, _, name), row in stats.items() if name in wanted)) / count

    return {
        "calls": float(sum(row[1] for row in stats.values())) / count,
        "sql": calls(SQL),
        "commits": calls({COMMIT}),
        "transactions": float(
            sum(
                row[1]
                for (file, _, name), row in stats.items()
                if name == COMMITTED and file.endswith("sqlite.py")
            )
        )
        / count,
        "file_opens": calls({OPEN}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", type=positive_number, default=200, help="(default: 200)")
    args = parser.parse_args(argv)
    found = counts(args.cases)
    print(
        f"a case: {found['calls']:,.0f} function calls, {found['sql']:.1f} SQL statements, "
        f"{found['commits']:.1f} commits ({found['transactions']:.1f} transactions), "
        f"{found['file_opens']:.1f} file opens"
    )
    print(
        json.dumps(
            {"bench": "engine_counts", "cases": args.cases, **{k: round(v, 1) for k, v in found.items()}}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
