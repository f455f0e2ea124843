"""The fuzzing script (``bench/fuzz_inputs.py``) run for a few seconds, so that CI exercises it: on the
real readers (it must find nothing), and on readers that fail on purpose (it must find, shrink and
report each way of failing, a worker that dies or hangs in native code included)."""

from __future__ import annotations

import io
import json
import os
import signal
import time

import pytest

from bench.fuzz_inputs import FILE_SIGNATURES, CaseTimeout, fuzz, main, time_limit
from flows.errors import BadInput

SECONDS = 4.0
SHRINK_SECONDS = 2.0
CASE_TIMEOUT = 5.0
TWO = ("random bytes", "random JSON")  # one generator per reader, for the tests of the fuzzer itself


def test_a_short_run_reads_every_kind_of_input_and_finds_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code = main(
        [
            "--seconds",
            str(SECONDS),
            "--shrink-seconds",
            str(SHRINK_SECONDS),
            "--case-timeout",
            str(CASE_TIMEOUT),
        ]
    )
    elapsed = time.monotonic() - started
    output = capsys.readouterr().out
    summary = json.loads(output.strip().splitlines()[-1])
    assert set(summary) == {"bench", "seconds", "cpl_cases", "intake_cases", "findings"}
    assert summary["bench"] == "fuzz_inputs"
    assert summary["cpl_cases"] > 0 and summary["intake_cases"] > 0
    assert SECONDS <= summary["seconds"] < SECONDS + SHRINK_SECONDS + CASE_TIMEOUT
    assert elapsed < SECONDS + SHRINK_SECONDS + CASE_TIMEOUT + 10  # the corpus loads in well under that
    counts = output.strip().splitlines()[-2]
    assert " 0 cases" not in counts and counts.startswith("fuzz_inputs:"), counts
    assert (summary["findings"], code) == (0, 0), output


def test_every_way_of_failing_is_found_shrunk_and_reported() -> None:
    def cpl(data: bytes) -> object:
        if len(data) >= 2:
            raise IndexError("a reader bug")
        raise BadInput("too short to be a CPL")

    def intake(payload: object) -> object:
        if isinstance(payload, dict):
            return "not a notification"
        raise BadInput("")

    out = io.StringIO()
    # Two generators, a second each. Shrinking stops as soon as the input is minimal, so its budget is
    # only a ceiling: a generous one keeps a loaded machine (CI, a benchmark alongside) from cutting
    # the shrink short, which a budget of 4 s did.
    report = fuzz(2.0, shrink_seconds=30.0, out=out, readers={"cpl": cpl, "intake": intake}, only=TWO)
    found = {finding.signature: finding for finding in report.findings}
    assert len(found) == len(report.findings) == 3, list(found)
    (index_error,) = (finding for signature, finding in found.items() if "IndexError" in signature)
    assert index_error.signature.startswith("cpl: IndexError at tests/test_fuzz_smoke.py:")
    # Shrunk to a shortest failing input the generator can make: two random bytes, or a file signature
    # alone. A signature is drawn whole, so from b"PK\x03\x04" with no bytes after it no smaller case is
    # one shrinking step away (dropping the signature leaves nothing, which passes).
    data = index_error.case.data
    assert len(data) == 2 or data in FILE_SIGNATURES, data
    assert any(s.startswith("intake: returned str, not EmergencyNotification") for s in found)
    assert any(s.startswith("intake: BadInput with an empty message (BadInput)") for s in found)
    printed = out.getvalue()
    assert printed.count("finding ") == 3 and "Traceback" in printed and "a reader bug" in printed


def test_a_worker_that_dies_or_hangs_in_native_code_is_a_finding_on_the_case_it_was_reading() -> None:
    def cpl(data: bytes) -> object:
        os.abort()  # as Rust does when an allocation fails

    def intake(payload: object) -> object:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # as in native code: no alarm gets in
        time.sleep(30)
        return None

    out = io.StringIO()
    started = time.monotonic()
    report = fuzz(
        2.0,
        shrink_seconds=0.5,
        case_timeout=0.2,
        hang_grace=0.5,
        out=out,
        readers={"cpl": cpl, "intake": intake},
        only=TWO,
    )
    assert time.monotonic() - started < 10
    signatures = [finding.signature for finding in report.findings]
    assert signatures == ["cpl: died of SIGABRT", "intake: hang in native code, over 0.7 s"], signatures
    crash = report.findings[0]
    assert crash.generator == "random bytes" and isinstance(crash.case.data, bytes)
    assert "died of SIGABRT" in crash.trace and ", line " in crash.trace and " in cpl" in crash.trace
    hang = report.findings[1]
    assert " in intake" in hang.trace  # where it was stuck, from faulthandler
    assert report.cases["cpl"] >= 1 and report.cases["intake"] >= 1
    assert out.getvalue().count("finding ") == 2


def test_an_unknown_generator_is_named() -> None:
    with pytest.raises(ValueError, match=r"no generator named \['random bites'\]"):
        fuzz(1.0, only=["random bites"])


def test_a_case_that_runs_too_long_is_stopped() -> None:
    started = time.monotonic()
    with pytest.raises(CaseTimeout), time_limit(0.2):
        time.sleep(3)
    assert time.monotonic() - started < 1
