"""Cold start: the import time of ``function_app`` against ``azure.functions`` and pydantic alone.

Each import is timed inside a fresh interpreter, alternating the two so that both see the same
machine; medians are compared. Prints, last, one JSON line:
{"bench": "cold_start", "ratio": ..., "target": 1.5, ...}. Exit status 1 when over the target.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 15
TARGET = 1.5
TIMED = "import time; t = time.perf_counter(); {imports}; print(time.perf_counter() - t)"
BASELINE = "import azure.functions, pydantic"
SUBJECT = "import function_app"


def timed_import(imports: str) -> float:
    code = TIMED.format(imports=imports)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip())


def main() -> int:
    timed_import(SUBJECT)  # warm the file cache (and byte-code) once for both, as a deployed app is
    baseline, subject = [], []
    for _ in range(ROUNDS):
        baseline.append(timed_import(BASELINE))
        subject.append(timed_import(SUBJECT))
    ratio = statistics.median(subject) / statistics.median(baseline)
    subject_ms, baseline_ms = statistics.median(subject) * 1000, statistics.median(baseline) * 1000
    print(f"function_app {subject_ms:.1f} ms; azure.functions + pydantic {baseline_ms:.1f} ms")
    result = {
        "bench": "cold_start",
        "ratio": round(ratio, 3),
        "target": TARGET,
        "function_app_ms": round(subject_ms, 1),
        "baseline_ms": round(baseline_ms, 1),
        "rounds": ROUNDS,
    }
    print(json.dumps(result))
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
