"""Soak: synthetic responses through intake, load and e-mail under faults, on SQLite and on Azurite.

Every response's emergency entry is already on the CPL, so each one should end loaded, with one
inventory row, one confirmation e-mail and one acknowledgement. 10% of responses are delivered twice
(half as the same queue message again, half as a new message for the same response, as a Graph delta
pass may), and a seeded 5% of the adapter calls (SMI, mail, Teams, case store) fail: transient
errors, 429s, answers lost after the effect, and worker crashes after the effect, whose message is
then delivered again.

Prints, last, one JSON line:
{"bench": "soak", "backends": {"embedded": {...}, "azure": {...}}, "ok": true}
Exit status 1 when anything is lost or duplicated. ``--count`` sets the number of responses for both
backends; by default the embedded store takes 1,000 and Azurite 300. ``--backends embedded`` runs one
only. ``--workers N`` runs N worker processes on the azure backend, on one queue as Functions scales
out, each with its own bridge and seeded fault plan; the tally adds up every worker's.

Measured on 2 cores shared with other benchmarks. Embedded: on 2026-11-29, ``--count 10000`` took
310 s (32/s; nothing lost or duplicated); its cost per response does not grow with the count.
Azurite: a response is about 70 requests, about 9 ms each, mostly the SDK's Python pipeline, so one
worker does about 2/s and three worker processes 3-4/s. On 2026-11-30, ``--count 10000 --workers 3``
took 3,316 s (3.0/s): 11,000 deliveries, 8,587 faults (2,177 crashes after the effect), cases,
loads, e-mails and acknowledgements 10,000 each, lost 0, duplicated 0. The pace went from 3.6/s over
the first 2,000 to 2.4/s over the last 1,500 (Azurite's Node process from 45% to 59% of a core).
Azurite finds an entity by scanning its partition, so that run needed cases and run headers spread
over 16 partitions each (``adapters/azure_storage/_keys.shard``): with one partition per kind, a
10,000 run slowed from 2.9/s to 1.3/s by 6,000 and was stopped after 56 minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing
import queue
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azure.storage.queue import QueueClient
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.bootstrap import BridgeApp, bootstrap
from flows.domain.case import CaseState
from flows.domain.cpl import CplPublication
from flows.queue_message import Message, form_response_message
from flows.service import WorkQueue
from flows.settings import Settings
from tests.support.faults import FaultPlan, Wrapped, drain_redelivering, install, no_sleep

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DEFAULT_COUNT = {"embedded": 1_000, "azure": 300}  # 10,000 on Azurite takes about an hour: see the docstring
FAULTED = (
    "inventory.upsert", "mailer.send", "channel.post", "cases.add", "cases.save", "cases.get",
)  # fmt: skip
FAULT_RATE = 0.05
BACKLOG = 200  # messages on the Azurite queue at most while ``--workers`` feeds it (see several_workers)
SEED = 2026


def synthetic_responses(count: int) -> tuple[list[dict[str, Any]], CplPublication]:
    """The engine bench's synthetic responses and one publication holding all their entries."""
    from bench.engine import synthetic

    made = [synthetic(index) for index in range(count)]
    entries = tuple(entry for _, emergency, previous in made for entry in (previous, emergency))
    digest = hashlib.sha256(f"soak-{count}".encode()).hexdigest()
    publication = CplPublication(source_sha256=digest, source_name="soak.xlsx", entries=entries)
    return [response for response, _, _ in made], publication


def deliveries(responses: list[dict[str, Any]], rng: random.Random) -> list[Message]:
    messages = [form_response_message(response) for response in responses]
    twice = rng.sample(messages, len(messages) // 10)
    again = [m if i % 2 else form_response_message(m.body["payload"]) for i, m in enumerate(twice)]
    out = messages + again
    rng.shuffle(out)
    return out


def fault_plan(seed: int) -> FaultPlan:
    return FaultPlan(
        seed=seed,
        rate=FAULT_RATE,
        kinds=("transient", "throttled", "transient_after", "crash_after"),
        only=FAULTED,
    )


def soak_settings(backend: str, home: Path, connection: str | None) -> Settings:
    if backend == "azure":
        assert connection is not None
        return Settings(
            home=home,
            backend="azure",
            storage_connection=SecretStr(connection),
            work_queue="soak-work",
            allow_stand_ins=True,  # storage is soaked; the SMI's stand-in counts the loads
        )
    return Settings(home=home)


@dataclass
class Worked:
    """What one worker saw: the inventory loads it made, the faults it was dealt, the messages it
    finished and how many of them it had to be given again."""

    loads: list[str]
    faults: Counter[str]
    handled: int
    redelivered: int


def drain(
    app: BridgeApp, plan: FaultPlan, wrapped: Wrapped, fed: Callable[[], bool] = lambda: True
) -> Worked:
    """Drain the queue as a worker, redelivering what it crashed on, until it is empty once ``fed``
    says nothing more will be put on it; what the worker did, for the tally."""
    handled = 0

    def handle(message: Message) -> None:
        nonlocal handled
        app.bridge.handle(message)
        handled += 1

    redelivered: list[Message] = []
    while True:
        finished = fed()  # asked first: a message fed during the pass below is found by that pass
        redelivered += drain_redelivering(app.bridge.queue, handle)
        if finished:
            break
        time.sleep(0.1)
    plan.enabled = False
    assert wrapped.inventory is not None
    faults = Counter[str](i.kind for i in plan.injected)
    return Worked(wrapped.inventory.loads, faults, handled, len(redelivered))


def soak(backend: str, count: int, home: Path, connection: str | None, workers: int = 1) -> dict[str, Any]:
    responses, publication = synthetic_responses(count)
    settings = soak_settings(backend, home, connection)
    messages = deliveries(responses, random.Random(SEED))
    started = time.perf_counter()
    if workers == 1:
        worked = [one_worker(settings, publication, messages)]
    else:  # the queue is shared storage: put the work on it, then let the workers take it
        worked = several_workers(backend, home, connection, publication, messages, workers)
    elapsed = time.perf_counter() - started
    with bootstrap(settings, clock=lambda: NOW) as app:  # no faults: only reads what the workers left
        cases = {case.response_id: case for case in app.cases.list()}
        rows = app.inventory.all()
    loads = [load for one in worked for load in one.loads]
    kinds = sum((one.faults for one in worked), Counter[str]())
    # Each file's key ("mail_loaded_<response>_<entry>", "mail_acknowledge_<response>"), without its digest.
    mails = Counter(p.name.rsplit("-", 1)[0] for p in (home / "outbox" / "mail").glob("*.eml"))
    ids = [str(r["responseId"]) for r in responses]
    not_loaded = [i for i in ids if i not in cases or cases[i].state is not CaseState.LOADED]
    no_email = [
        i for i in ids if sum(n for name, n in mails.items() if name.startswith(f"mail_loaded_{i}_")) != 1
    ]
    no_ack = [i for i in ids if mails[f"mail_acknowledge_{i}"] != 1]
    opened_twice = [c for c in cases.values() if sum(t.from_state is None for t in c.timeline) != 1]
    loaded_twice = [c for c in cases.values() if [t.to_state for t in c.timeline].count(CaseState.LOADED) > 1]
    duplicated = (
        len(loads) - len(set(loads))
        + max(0, len(rows) - len(ids))
        + sum(n - 1 for n in mails.values() if n > 1)
        + len(opened_twice) + len(loaded_twice)
    )  # fmt: skip
    lost = len(set(not_loaded) | set(no_email) | set(no_ack))
    return {
        "submitted": count,
        "deliveries": count + count // 10,
        "cases": len(cases),
        "loads": len(set(loads)),
        "emails": sum(n for name, n in mails.items() if name.startswith("mail_loaded_")),
        "acknowledgements": sum(n for name, n in mails.items() if name.startswith("mail_acknowledge_")),
        "lost": lost,
        "duplicated": duplicated,
        "faults": dict(sorted(kinds.items())),
        "redelivered": sum(one.redelivered for one in worked),
        "workers": workers,
        "handled_per_worker": [one.handled for one in worked],
        "seconds": round(elapsed, 1),
        "per_s": round(count / elapsed, 1),
        "lost_examples": sorted(set(not_loaded) | set(no_email) | set(no_ack))[:5],
    }


def one_worker(settings: Settings, publication: CplPublication, messages: list[Message]) -> Worked:
    """One worker, faulted, draining the queue the deliveries are put on (as before ``--workers``)."""
    plan, wrapped = fault_plan(SEED), Wrapped()
    with bootstrap(settings, clock=lambda: NOW, sleep=no_sleep, adjust=install(plan, wrapped)) as app:
        plan.enabled = False
        app.publications.add(publication, fetched_at=NOW, source="soak")
        plan.enabled = True
        for message in messages:
            wrapped.submit(message)
        return drain(app, plan, wrapped)


def several_workers(
    backend: str,
    home: Path,
    connection: str | None,
    publication: CplPublication,
    messages: list[Message],
    workers: int,
) -> list[Worked]:
    """Workers in processes of their own, as Functions scales out: one bridge each on the same storage.

    Processes, not threads: a worker spends most of its time in Python (the SDK's request pipeline,
    pydantic, the engine), so threads would wait for one another on the GIL. Each worker drains the
    queue with a fault plan of its own (seeded ``SEED + its number``) and reports its loads and faults.
    This process is the triggers' side: it keeps the queue fed, unfaulted, ``BACKLOG`` messages deep
    (responses arrive over time; and Azurite sorts a queue's every message on each receive, so 11,000
    queued at once made each receive take 150 ms).
    """
    assert connection is not None, "several workers share a Storage queue: the azure backend"
    settings = soak_settings(backend, home, connection)
    spawn = multiprocessing.get_context("spawn")  # no fork of a process with Azurite's reader thread
    fed, results = spawn.Event(), spawn.Queue()
    with bootstrap(settings, clock=lambda: NOW) as app:
        app.publications.add(publication, fetched_at=NOW, source="soak")
        processes = [
            spawn.Process(target=worker, args=(backend, str(home), connection, SEED + n, fed, results))
            for n in range(workers)
        ]
        for process in processes:
            process.start()
        feed(app.bridge.queue, messages, QueueClient.from_connection_string(connection, settings.work_queue))
        fed.set()
        worked: list[Worked] = []
        while len(worked) < workers:
            try:
                outcome = results.get(timeout=5)
            except queue.Empty:
                if any(process.exitcode not in (None, 0) for process in processes):
                    raise RuntimeError("a worker process died without reporting") from None
                continue
            if not isinstance(outcome, Worked):
                raise RuntimeError(f"a worker failed: {outcome}")
            worked.append(outcome)
    for process in processes:
        process.join()
    return worked


def feed(work: WorkQueue, messages: list[Message], depth: QueueClient) -> None:
    """Put every message on the queue, keeping at most ``BACKLOG`` there (events the workers emit count)."""
    waiting = iter(messages)
    while True:
        room = BACKLOG - (depth.get_queue_properties().approximate_message_count or 0)
        if room <= 0:
            time.sleep(0.2)
            continue
        batch = list(itertools.islice(waiting, room))
        for message in batch:
            work.put(message)
        if len(batch) < room:
            return


def worker(
    backend: str, home: str, connection: str | None, seed: int, fed: Event, results: Queue[Worked | str]
) -> None:
    """One worker process: its own bridge and fault plan; drains the shared queue until every
    delivery has been fed and the queue is then found empty.

    A message another worker still holds is not visible, and is finished by that worker (a crash is
    redelivered to the same worker, as ``drain_redelivering`` does), so a worker that finds the queue
    empty after the last delivery was fed may stop: whatever the others emit later, they take themselves.
    """
    plan, wrapped = fault_plan(seed), Wrapped()
    settings = soak_settings(backend, Path(home), connection)
    try:
        with bootstrap(settings, clock=lambda: NOW, sleep=no_sleep, adjust=install(plan, wrapped)) as app:
            results.put(drain(app, plan, wrapped, fed.is_set))
    except BaseException as error:
        results.put(f"{type(error).__name__}: {error}")
        raise


def with_azurite(run: Any) -> Any:
    """Start Azurite as the tests do (installing it from npm on first use), run, stop it."""
    from tests.azurite import FOLDER, AzuriteServer, install, start, stop

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise SystemExit("Node.js and npm are needed to run Azurite for the azure backend")
    install(npm, FOLDER)
    with tempfile.TemporaryDirectory(prefix="soak-azurite-") as workdir:
        process, ports = start(node, FOLDER, Path(workdir))
        try:
            return run(AzuriteServer(ports, 0.0, False, 0.0).connection_string)
        finally:
            stop(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, help="responses per backend (default: 1,000 / 300)")
    parser.add_argument("--backends", nargs="+", choices=["embedded", "azure"], default=["embedded", "azure"])
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on the azure backend, sharing its queue (default 1; embedded: always 1)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    results: dict[str, dict[str, Any]] = {}
    for backend in args.backends:
        count = args.count or DEFAULT_COUNT[backend]
        with tempfile.TemporaryDirectory(prefix=f"soak-{backend}-") as folder:
            if backend == "azure":
                results[backend] = with_azurite(
                    lambda c: soak(backend, count, Path(folder), c, args.workers)  # noqa: B023
                )
            else:
                results[backend] = soak(backend, count, Path(folder), None)
        r = results[backend]
        print(
            f"{backend}: {r['submitted']} responses in {r['seconds']} s ({r['per_s']}/s, "
            f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}); "
            f"cases {r['cases']}, loads {r['loads']}, e-mails {r['emails']}; faults {r['faults']}; "
            f"lost {r['lost']}, duplicated {r['duplicated']}",
            flush=True,
        )
    ok = all(r["lost"] == 0 and r["duplicated"] == 0 for r in results.values())
    print(json.dumps({"bench": "soak", "backends": results, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
