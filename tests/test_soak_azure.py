"""The soak bench with several workers on one Azurite queue: a short run, end to end through its CLI.

It starts an Azurite of its own (as the bench does), so the soak's tables and queue are not shared
with other tests. Worker processes each build their bridge and fault plan; the tally must count every
worker's faults and loads, and nothing may be lost or duplicated.
"""

from __future__ import annotations

import json

import pytest

from bench import soak


def test_two_workers_on_one_queue_lose_and_duplicate_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    count = 40
    assert soak.main(["--backends", "azure", "--count", str(count), "--workers", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    azure = result["backends"]["azure"]
    assert result["ok"] and azure["lost"] == azure["duplicated"] == 0
    assert (azure["cases"], azure["loads"], azure["emails"], azure["acknowledgements"]) == (count,) * 4
    assert azure["workers"] == 2 and len(azure["handled_per_worker"]) == 2
    # every delivery and the events its runs emit were finished by one worker or the other
    assert sum(azure["handled_per_worker"]) >= azure["deliveries"]
    # the faults are the workers' own: the process that tallies injects none
    assert sum(azure["faults"].values()) > 0


def test_workers_are_refused_below_one() -> None:
    with pytest.raises(SystemExit):
        soak.main(["--backends", "azure", "--workers", "0"])
