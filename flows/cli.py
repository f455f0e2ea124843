"""The command line: feed responses, sync the CPL, read cases and runs, validate and draw flows.

Bad input (an unreadable file, an unknown flow, invalid JSON, a bad setting) ends with one clear line
on stderr and a non-zero exit; so does a sync or a scheduled check whose run failed, even when the
flow told the operators. The tables go to stdout.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError
from rich.console import Console

from adapters.embedded import DEFAULT_FILE_NAME, SchemaMismatch
from flows.bootstrap import BridgeApp, bootstrap
from flows.cli_output import (
    DownloadProgress,
    case_rows,
    print_cases,
    print_poisoned,
    print_progress,
    print_run,
    print_runs,
)
from flows.domain.decisions import Decision, DecisionKind
from flows.engine.loader import FlowSource
from flows.engine.runs import RunRecord
from flows.errors import BadInput, BridgeError
from flows.queue_message import Message, NotAResponse, form_response_message
from flows.service import HoldsPoisoned, PoisonedMessage
from flows.settings import SAMPLES, Settings, read_settings
from flows.workers import SharedQueue, drain_with_workers


@runtime_checkable
class LocalQueue(SharedQueue, Protocol):
    """What ``drain`` needs of the embedded queue (``SqliteWorkQueue``): its count, and its poison."""

    def poisoned(self) -> list[tuple[str, str]]: ...

    def requeue_poisoned(self) -> int: ...


@runtime_checkable
class PeeksPoison(Protocol):
    """The Storage queue (``StorageWorkQueue.waiting_poisoned``): what waits in its poison queues, not kept
    yet, by queue: the messages a peek lists, and about how many more it cannot."""

    def waiting_poisoned(self) -> Sequence[tuple[str, list[PoisonedMessage], int]]: ...


ERR = Console(stderr=True, highlight=False, soft_wrap=True)
# Piped output (CI logs, files) gets a width a log viewer shows well, not the 80 of no terminal.
OUT = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


class Clock:
    """The command's clock: real time, or the ``--now`` given (replays, tests, the demo's scenario)."""

    def __init__(self, fixed: datetime | None) -> None:
        self.fixed = fixed

    def __call__(self) -> datetime:
        return self.fixed or datetime.now(UTC)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (BadInput, KeyError, OSError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        ERR.print(f"error: {message}", markup=False)
        return 2
    except BridgeError as error:  # a far side (Storage, Graph, the SMI) failed or refused: not the input
        ERR.print(f"error: {error}", markup=False)
        return 1
    except sqlite3.OperationalError as error:  # the home's file locked past the wait, or not openable
        ERR.print(f"error: the home's database ({args.home / DEFAULT_FILE_NAME}): {error}", markup=False)
        return 1
    except KeyboardInterrupt as stop:  # what was written stays written: say what is left, not where
        queued = stop.queued if isinstance(stop, Stopped) else None
        if queued is None:
            left = "what was queued stays queued, for the next command (or 'drain') to handle"
        else:
            left = f"{queued} message(s) stay queued, for the next command (or 'drain') to handle"
        ERR.print(f"stopped (Ctrl-C): {left}", markup=False)
        return 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flows", description=__doc__)
    parser.add_argument(
        "--home",
        type=_home,
        default=os.environ.get("BRIDGE_HOME") or ".bridge",  # a string: argparse checks it as given
        help="the folder the embedded state and outboxes live in (default: $BRIDGE_HOME, else .bridge)",
    )
    parser.add_argument("--now", type=_instant, default=None, help="the clock, ISO-8601 (for replays)")
    commands = parser.add_subparsers(dest="command", required=True)

    intake = commands.add_parser(
        "intake",
        help="feed form responses (JSON object or array)",
        description="Feed form responses and handle them. Every file is read and checked first: one "
        "that is not JSON, or an item that is not a response, stops the command before anything is "
        "queued. A response whose answers break a rule is kept as a rejected case, and said so.",
    )
    intake.add_argument(
        "files", nargs="+", type=Path, help="JSON files: a response or an array of them (see samples/forms)"
    )
    intake.add_argument(
        "--workers", type=_workers, default=1, help="processes handling the responses (up to the cores)"
    )
    intake.set_defaults(handler=_intake)

    sync = commands.add_parser("sync", help="one SECAS sync against a file or URL")
    sync.add_argument(
        "--cpl", required=True, help="the CPL: a workbook (.xlsx) or CSV file, or an http(s) URL to one"
    )
    sync.set_defaults(handler=_sync)

    drain = commands.add_parser("drain", help="handle what is queued (what a stopped command left)")
    drain.add_argument("--workers", type=_workers, default=1, help="processes handling it (up to the cores)")
    drain.add_argument(
        "--retry-poisoned", action="store_true", help="first put back the messages given up on (cause fixed)"
    )
    drain.set_defaults(handler=_drain)

    poisoned = commands.add_parser(
        "poisoned",
        help="messages given up on: list them, or put them back on the work queue",
        description="List the messages the work queue gave up on (the embedded poison table, or in "
        "Azure the copies the poison-queue trigger kept): id, type, flow, why and when, never what they "
        "hold. With --requeue, put back the ones named (every one when none is named) once their cause "
        "is fixed; with --forget, delete the ones named without putting them back. An id that is not "
        "kept stops the command before anything is put back or deleted.",
    )
    what = poisoned.add_mutually_exclusive_group()
    what.add_argument(
        "--requeue",
        nargs="*",
        metavar="ID",
        default=None,
        help="put these back on the work queue (all of them when no id is given)",
    )
    what.add_argument(
        "--forget",
        nargs="+",
        metavar="ID",
        default=None,
        help="delete these without putting them back (each named: they hold a supplier's contact)",
    )
    poisoned.set_defaults(handler=_poisoned)

    tick = commands.add_parser("tick", help="run the scheduled checks once (not the sync: that is 'sync')")
    tick.add_argument("--flow", action="append", default=None, help="only this scheduled flow (repeatable)")
    tick.set_defaults(handler=_tick)

    cases = commands.add_parser("cases", help="the cases, as a table or JSON")
    cases.add_argument("--json", action="store_true", help="a JSON array, for programs")
    cases.set_defaults(handler=_cases)
    case_commands = cases.add_subparsers(dest="cases_command")
    decide = case_commands.add_parser("decide", help="an operator's decision on a case needing attention")
    decide.add_argument("response_id")
    kinds = decide.add_mutually_exclusive_group(required=True)
    for kind in DecisionKind:
        kinds.add_argument(f"--{kind.value}", dest="kind", action="store_const", const=kind)
    decide.add_argument("--reason", default="", help="why (needed to accept or reject)")
    decide.add_argument(
        "--operator", default=os.environ.get("BRIDGE_OPERATOR") or getpass.getuser(), help="who decides"
    )
    decide.set_defaults(handler=_cases_decide)

    serve = commands.add_parser("serve", help="the operator console and the HTTP endpoints, on loopback")
    serve.add_argument("--port", type=_port, default=7071)
    serve.add_argument("--host", default="127.0.0.1", help="loopback unless you mean it")
    serve.set_defaults(handler=_serve)

    runs = commands.add_parser("runs", help="run history")
    runs.add_argument("--key", default=None, help="a business key: response id, supplier, CPL entry")
    runs.add_argument("--flow", default=None, help="only runs of this flow")
    runs.set_defaults(handler=_runs)
    run_commands = runs.add_subparsers(dest="runs_command")
    show = run_commands.add_parser("show", help="one run's actions")
    show.add_argument("run_id")
    show.set_defaults(handler=_runs_show)
    resubmit = run_commands.add_parser("resubmit", help="run a run again, whole or from one action")
    resubmit.add_argument("run_id")
    resubmit.add_argument(
        "--from", dest="from_action", default=None, help="the action to start from (its path in `runs show`)"
    )
    resubmit.set_defaults(handler=_runs_resubmit)

    run = commands.add_parser("run", help="run one flow on an input file")
    run.add_argument("flow")
    run.add_argument(
        "--input",
        type=Path,
        required=True,
        help="a JSON file: the trigger (an object; else its body); for notification-intake, a form "
        "response, as intake takes it",
    )
    run.add_argument("--dry-run", action="store_true")
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check flow files")
    validate.add_argument("files", nargs="*", type=Path, help="flow files (default: the bridge's flows)")
    validate.set_defaults(handler=_validate)

    graph = commands.add_parser("graph", help="a Mermaid diagram of a flow")
    graph.add_argument("flow")
    graph.set_defaults(handler=_graph)

    demo = commands.add_parser("demo", help="the whole sample scenario in a fresh home")
    demo.set_defaults(handler=_demo)
    return parser


def _home(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("the home is empty: name a folder (the default is .bridge)")
    home = Path(text)
    if home.exists() and not home.is_dir():
        raise argparse.ArgumentTypeError(f"the home {text!r} is a file, not a folder")
    return home


MAX_WORKERS_PER_CORE = 4


def _workers(text: str) -> int:
    value = positive_number(text)
    most = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    if value > most:
        raise argparse.ArgumentTypeError(
            f"{value} workers on {os.cpu_count()} cores would only wait for each other: at most {most}"
        )
    return value


def _port(text: str) -> int:
    """A TCP port, or 0 for any free one."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (0 for any free one, to 65535): {text!r}")
    return int(text)


def positive_number(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1 (the benches' counts use it too)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text!r}") from error
    if not 1970 <= moment.year <= 9998:  # room for the checks' arithmetic (year 1 overflowed them)
        raise argparse.ArgumentTypeError(f"not an instant between 1970 and 9998: {text!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Stopped(KeyboardInterrupt):
    """Ctrl-C while a command had its home open: how many messages stay queued (None: not counted)."""

    def __init__(self, queued: int | None) -> None:
        super().__init__(queued)
        self.queued = queued


@contextmanager
def _open(
    args: argparse.Namespace, clock: Clock | None = None, *, reads_only: bool = False
) -> Iterator[BridgeApp]:
    """The bridge on the command's home, closed after. Ctrl-C inside becomes ``Stopped``, counted
    before the home closes: the messages queued and not yet acknowledged stay queued (one being run
    stays leased to this process, and is released when the next command opens the queue).

    ``reads_only``: a command that only shows what is there refuses a home that does not exist,
    rather than make an empty one and show nothing (a mistyped ``--home`` looked like an empty one)."""
    with _bootstrap(args, clock, reads_only=reads_only) as app:
        try:
            yield app
        except KeyboardInterrupt:
            raise Stopped(_queued(app)) from None


def _queued(app: BridgeApp) -> int | None:
    queue = app.parts.queue
    if not isinstance(queue, LocalQueue):
        return None  # Storage's count is an estimate a request away, and the host drains it anyway
    try:
        return queue.pending()
    except sqlite3.Error:  # stopped half-way through a statement: the count is not worth a traceback
        return None


def _bootstrap(args: argparse.Namespace, clock: Clock | None, *, reads_only: bool) -> BridgeApp:
    """The bridge on the command's home; a home this code cannot read is one line naming its file."""
    config = settings(args.home)
    if reads_only and config.backend == "embedded" and not (args.home / DEFAULT_FILE_NAME).is_file():
        why = "does not exist" if not args.home.exists() else f"holds no {DEFAULT_FILE_NAME}"
        raise BadInput(
            f"no bridge home at {args.home}: the folder {why} (a mistyped --home or $BRIDGE_HOME? "
            "intake, sync or demo make one)"
        )
    try:
        return bootstrap(
            config,
            clock=clock or Clock(args.now),
            on_progress=print_progress,
            on_download=DownloadProgress(),
        )
    except SchemaMismatch as error:  # its message names the file and both versions
        raise BadInput(f"written by a later version of the bridge: {error}") from error
    except sqlite3.OperationalError:  # locked, or cannot be opened: not a damaged file (``main`` says it)
        raise
    except sqlite3.DatabaseError as error:
        raise BadInput(
            f"{args.home / DEFAULT_FILE_NAME}: {error}: the home's file is damaged or is not the bridge's"
        ) from error


def settings(home: Path) -> Settings:
    """The settings from the environment, or one line naming each variable that is wrong."""
    return read_settings(home=home)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror or error}") from error
    except RecursionError as error:
        raise BadInput(f"{path}: not usable JSON: nested too deeply") from error
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: also a number of over 4,300 digits
        raise BadInput(f"{path}: not valid JSON: {error}") from error


def response_messages(payload: Any, path: Path) -> list[Message]:
    """Form responses in a file (an object, or an array of them) as queue messages, each checked to
    be writable to the queue, so that a bad item stops the command before anything is queued."""
    if isinstance(payload, dict) and isinstance(payload.get("value"), list) and "responseId" not in payload:
        raise BadInput(
            f"{path}: a Graph delta page, not a response: give its 'value' items (a JSON array) instead"
        )
    items = payload if isinstance(payload, list) else [payload]
    messages = []
    for index, item in enumerate(items):
        try:
            message = form_response_message(item)
            message.model_dump_json()  # text JSON cannot carry (a lone surrogate) fails here, not half-way
        except NotAResponse as error:
            raise BadInput(f"{path}: item {index}: {error}") from error
        except ValueError as error:
            raise BadInput(f"{path}: item {index}: cannot be queued: {error}") from error
        messages.append(message)
    return messages


def _intake(args: argparse.Namespace) -> int:
    batches = [response_messages(_read_json(path), path) for path in args.files]
    with _open(args) as app:
        submitted = [app.bridge.submit(message) for batch in batches for message in batch]
        drain_with_workers(app, args.workers, now=args.now, on_progress=print_progress)
        for message in submitted:
            case = app.cases.get(str(message.body["response_id"]))
            if case is not None and case.state.value == "rejected":
                ERR.print(f"response {case.response_id} rejected: {'; '.join(case.problems)}", markup=False)
    return 0


def _sync(args: argparse.Namespace) -> int:
    with _open(args) as app:
        ERR.print(f"syncing with the CPL at {args.cpl}", markup=False)
        submitted = app.bridge.submit(Message(type="http", flow="secas-sync", body={"location": args.cpl}))
        return _failed(app.bridge.drain(), [submitted])


def _failed(runs: Sequence[RunRecord], submitted: Sequence[Message]) -> int:
    """1, with a line per failed action, when a run of a message the command ``submitted`` failed or
    had to handle a failure (a sync whose download failed ends by telling the operators, which
    succeeds); 0 otherwise. Not the runs of the events they emitted, nor of what an earlier command
    left queued (a sync interrupted before its download failed), which the same drain handles: those
    are told of as they run. A message's runs have ids derived from its id (``Bridge.process``)."""
    ours = {f"{message.message_id}-{message.flow}" for message in submitted}
    runs = [run for run in runs if run.run_id in ours]
    failures = [(run, action) for run in runs for action in run.failed_actions()]
    for run, action in failures:
        ERR.print(f"error: {run.flow}: {action.path}: {action.error}", markup=False)
    failed_runs = [run for run in runs if run.status.value != "Succeeded"]
    return 1 if failures or failed_runs else 0


def _drain(args: argparse.Namespace) -> int:
    with _open(args) as app:
        queue = app.parts.queue
        if not isinstance(queue, LocalQueue):
            raise BadInput("drain works on the embedded queue; in Azure the Functions host drains the queue")
        if args.retry_poisoned:
            ERR.print(f"{queue.requeue_poisoned()} poisoned message(s) put back", markup=False)
        before = queue.pending()
        drain_with_workers(app, args.workers, now=args.now, on_progress=print_progress)
        after, poisoned = queue.pending(), len(queue.poisoned())
    ERR.print(f"{before} message(s) were waiting; {after} left; {poisoned} in poison", markup=False)
    return 0


def _poisoned(args: argparse.Namespace) -> int:
    with _open(args, reads_only=True) as app:  # nothing to put back or delete in a home not made
        queue = app.parts.queue
        if not isinstance(queue, HoldsPoisoned):
            raise BadInput("this work queue keeps no poisoned messages")
        then = "the next 'drain' handles them" if app.parts.local_queue else "the Functions host handles them"
        if args.forget:
            forgotten = queue.forget_poisoned(args.forget)
            ids = ", ".join(dict.fromkeys(args.forget))
            ERR.print(f"{forgotten} poisoned message(s) deleted ({ids})", markup=False)
        elif args.requeue is None:
            kept = queue.poisoned_messages()
            if kept:
                print_poisoned(OUT, kept)
            ERR.print(f"{len(kept)} poisoned message(s) kept", markup=False)
            if isinstance(queue, PeeksPoison):
                for name, listed, more in queue.waiting_poisoned():
                    _print_waiting(name, listed, more)
        elif args.requeue:
            moved = queue.requeue_poisoned(args.requeue)
            ids = ", ".join(dict.fromkeys(args.requeue))
            ERR.print(f"{moved} poisoned message(s) put back ({ids}); {then}", markup=False)
        else:
            ERR.print(f"{queue.requeue_poisoned()} poisoned message(s) put back; {then}", markup=False)
    return 0


def _print_waiting(name: str, listed: list[PoisonedMessage], more: int) -> None:
    """What waits in one poison queue, not kept yet: the messages listed (not yet what ``--requeue``
    takes), and those a peek could not list, counted, so that a short list is not taken for all."""
    if listed:
        print_poisoned(OUT, listed, title=f"Not kept yet, in {name} ({len(listed)})")
        ERR.print(
            f"{len(listed)} more in {name}, not kept yet (listed above; the poison trigger keeps them, "
            "then --requeue takes them)",
            markup=False,
        )
    if more:
        ERR.print(
            f"{'and about' if listed else 'about'} {more} more in {name}, not kept yet and not listed (a"
            " peek shows the first 32 visible messages only; one hidden until its alert is tried again is"
            " not visible)",
            markup=False,
        )


def _tick(args: argparse.Namespace) -> int:
    with _open(args) as app:
        scheduled = [
            name
            for name, source in app.bridge.flows.items()
            if name != "secas-sync" and any(t.type == "recurrence" for t in source.definition.triggers)
        ]
        for name in args.flow or scheduled:
            if name not in scheduled:
                raise BadInput(
                    f"{name!r} is not a scheduled check; scheduled: {', '.join(sorted(scheduled))}"
                )
        submitted = [
            app.bridge.submit(Message(type="recurrence", flow=name)) for name in args.flow or scheduled
        ]
        return _failed(app.bridge.drain(), submitted)


def _cases(args: argparse.Namespace) -> int:
    with _open(args, reads_only=True) as app:
        cases = app.cases.list()
        if args.json:
            # Not through rich: it wraps long lines, inside JSON strings too, which made the JSON invalid.
            sys.stdout.write(json.dumps(case_rows(cases), indent=2) + "\n")
        else:
            print_cases(OUT, cases, now=Clock(args.now)())
    return 0


def _cases_decide(args: argparse.Namespace) -> int:
    try:
        decision = Decision(
            decision_id=uuid.uuid4().hex, kind=args.kind, operator=args.operator, reason=args.reason
        )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise BadInput(f"decision: {problems}") from error
    with _open(args) as app:
        case = app.decide(args.response_id, decision)
        print_cases(OUT, [case], now=Clock(args.now)())
    return 0


def _serve(args: argparse.Namespace) -> int:
    from flows.console.serve import serve

    with _open(args) as app:
        return serve(app, host=args.host, port=args.port, out=OUT)


def _runs(args: argparse.Namespace) -> int:
    with _open(args, reads_only=True) as app:
        if args.flow is not None and args.flow not in app.bridge.flows:  # a typo showed "no runs"
            raise BadInput(f"unknown flow {args.flow!r}; flows: {', '.join(sorted(app.bridge.flows))}")
        print_runs(OUT, app.bridge.engine.runs.find(key=args.key, flow=args.flow))
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    with _open(args) as app:
        run = app.bridge.engine.runs.get(args.run_id)
        if run is None:
            raise BadInput(f"no run {args.run_id!r}")
        print_run(OUT, run)
    return 0


def _runs_resubmit(args: argparse.Namespace) -> int:
    with _open(args) as app:
        run = app.bridge.resubmit(args.run_id, from_action=args.from_action)
        app.bridge.drain()
        print_run(OUT, run)
    return 0 if run.status.value == "Succeeded" else 1


def _run(args: argparse.Namespace) -> int:
    payload = _read_json(args.input)
    with _open(args) as app:
        source = app.bridge.flows.get(args.flow)
        if source is None:
            raise BadInput(f"unknown flow {args.flow!r}; flows: {', '.join(sorted(app.bridge.flows))}")
        run = app.bridge.engine.run(source, _trigger(source, payload, args.input), dry_run=args.dry_run)
        if not args.dry_run:
            app.bridge.drain()
        print_run(OUT, run)
    return 0 if run.status.value == "Succeeded" else 1


def _trigger(source: FlowSource, payload: Any, path: Path) -> dict[str, Any]:
    """What ``run`` gives the flow. For a flow a form response triggers, what intake would: the
    response wrapped as its queue message, then as ``Bridge.process`` gives a message to a flow.
    Given as it was, the real run failed at its first action, and the dry run, which runs none, said
    Succeeded. Another flow's trigger is the object given (anything else is its body)."""
    if not any(trigger.type == "form_response" for trigger in source.definition.triggers):
        return payload if isinstance(payload, dict) else {"body": payload}
    wrapped = isinstance(payload, dict) and set(payload) == {"response_id", "payload"}  # the trigger itself
    try:
        message = form_response_message(payload["payload"] if wrapped else payload)
    except NotAResponse as error:
        raise BadInput(
            f"{path}: {source.definition.name} is run by a form response: give one, as intake takes "
            f'(samples/forms/responses.json holds some), or {{"response_id": ..., "payload": <the '
            f"response>}}: {error}"
        ) from error
    return {"type": message.type, "event": message.event, **message.body, "body": message.body}


def _validate(args: argparse.Namespace) -> int:
    from flows.engine.loader import FlowFileError, load_flow
    from flows.engine.validation import validate_flow

    with _open(args) as app:
        paths = args.files or sorted(app.settings.flows_dir.glob("*.yaml"))
        problems: list[str] = []
        for path in paths:
            try:
                problems += validate_flow(load_flow(path), app.registry)
            except FlowFileError as error:
                problems += error.problems
    for problem in problems:
        ERR.print(problem, markup=False)
    if not problems:
        OUT.print(f"{len(paths)} flow file(s) valid", markup=False)
    return 1 if problems else 0


def _graph(args: argparse.Namespace) -> int:
    from flows.engine.graph import mermaid

    with _open(args) as app:
        source = app.bridge.flows.get(args.flow)
        if source is None:
            raise BadInput(f"unknown flow {args.flow!r}; flows: {', '.join(sorted(app.bridge.flows))}")
        OUT.print(mermaid(source), markup=False)
    return 0


DEMO_STEPS = (
    ("intake of the sample responses", "2026-11-23T14:00:00Z"),
    ("sync of the 2026-11-20 publication", "2026-11-23T14:05:00Z"),
    ("sync of the 2026-11-24 publication", "2026-11-24T09:05:00Z"),
    ("hourly check, three days later", "2026-11-27T15:00:00Z"),
)


def _demo(args: argparse.Namespace) -> int:
    if args.home.exists() and any(args.home.iterdir()):
        raise BadInput(f"demo needs a fresh home: {args.home} is not empty (remove it or pass --home)")
    clock = Clock(None)
    steps = iter(DEMO_STEPS)

    def step() -> None:
        title, moment = next(steps)
        clock.fixed = _instant(moment)
        ERR.print(f"[bold]{title}[/] at {moment}")

    with _open(args, clock) as app:
        step()
        for message in response_messages(_read_json(SAMPLES / "forms" / "responses.json"), SAMPLES):
            app.bridge.submit(message)
        app.bridge.drain()
        for name in ("cpl-2026-11-20.xlsx", "cpl-2026-11-24.xlsx"):
            step()
            location = str(SAMPLES / "cpl" / name)
            app.bridge.submit(Message(type="http", flow="secas-sync", body={"location": location}))
            app.bridge.drain()
        step()
        app.bridge.submit(Message(type="recurrence", flow="case-lifecycle"))
        app.bridge.drain()
        print_cases(OUT, app.cases.list(), now=clock())
        outbox = args.home / "outbox"
        OUT.print(f"\nE-mails and cards: {outbox}/mail, {outbox}/teams", markup=False)
        OUT.print(f"Run history: python -m flows --home {args.home} runs", markup=False)
        OUT.print(
            f"Operator console: python -m flows --home {args.home} serve, then open the address it prints "
            "(case 4 needs a decision)",
            markup=False,
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
