"""The per-request recorder: a Locust plugin (documented event hooks) that writes EVERY request to Parquet.

A locustfile imports it (``import drillbit.load.recorder``). It adds Locust options

    --drill-run-dir DIR    (or $DRILL_RUN_DIR) record every request under DIR/requests/
    --drill-profile NAME   (or $DRILL_PROFILE) load profile: a name in loadtests/profiles or a file
    --drill-workers N      (or $DRILL_WORKERS) generator processes sharing an open-model rate
    --drill-records-via    (or $DRILL_RECORDS_VIA) files (default) or master: workers on other
                           machines send their records to the master (``drillbit.load.transit``)

and, in every process that runs users (not a master), listens to ``events.request`` from
``test_start`` to ``test_stop``/``quitting``: each request becomes one row of
``drillbit.core.rundir.REQUEST_SCHEMA`` in ``<run dir>/requests/worker-<n>.<part>.parquet`` (see
``drillbit.load.recording``). The open model passes each request's intended send time through the
request's ``context`` (``{"intended": epoch, "sent": epoch}``); closed-model requests have none.
Without a run directory nothing is recorded and Locust runs as usual.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import pyarrow as pa
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from drillbit.core.clock import Clock
from drillbit.load.profiles import Profile, load_profile
from drillbit.load.recording import ABANDONED, NOT_SENT, RequestSink, ScheduleStats, error_kind
from drillbit.load.transit import RECORDS_END_MESSAGE, RECORDS_MESSAGE, RecordReceiver, encode_batch, end_message

__all__ = ["Recorder", "profile_of", "recorder_of", "workers_of"]

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0


class Recorder:
    """One process's sink and schedule counters, fed by Locust's request event. ``send`` (a remote
    worker): each flush goes to the master as a message instead of into the run directory."""

    def __init__(self, run_dir: Path | None, worker: int, clock: Clock,
                 send: Callable[[str, dict[str, Any]], None] | None = None) -> None:  # fmt: skip
        self.run_dir, self.clock, self.worker, self._send = run_dir, clock, worker, send
        self.batches_sent = 0
        self.sink = RequestSink(run_dir, worker, send=None if send is None else self._forward)
        self.schedule = ScheduleStats(worker=worker)

    def _forward(self, batch: pa.RecordBatch) -> None:
        assert self._send is not None
        self._send(RECORDS_MESSAGE, encode_batch(batch, self.worker, self.batches_sent))
        self.batches_sent += 1

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int = 0,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        latency = (response_time or 0.0) / 1000.0
        status = int(getattr(response, "status_code", 0) or 0)
        intended = math.nan
        if context and "sent" in context:
            start = context["sent"]
            intended = context.get("intended", math.nan)
        else:
            start = self.clock.now() - latency
        label = name if name.startswith(request_type) else f"{request_type} {name}"
        headers = getattr(response, "headers", None)
        retry_after = headers is not None and headers.get("Retry-After") is not None
        self.sink.add(label, intended, start, latency, status, error_kind(exception, status, retry_after))

    def not_sent(self, intended: float) -> None:
        """A request that was due but never left: the test stopped while it waited."""
        self.sink.add("(not sent)", intended, math.nan, math.nan, 0, NOT_SENT)
        self.schedule.not_sent += 1

    def abandoned(self, intended: float, sent: float) -> None:
        """A request still in flight when the test stopped: sent, never answered."""
        self.sink.add("(abandoned)", intended, sent, math.nan, 0, ABANDONED)
        self.schedule.abandoned += 1

    def close(self) -> None:
        self.sink.close()
        schedule = self.schedule.to_dict() if self.schedule.t0 is not None else None
        if self._send is not None:  # the last word: what was sent, so the master can count what it lost
            self._send(RECORDS_END_MESSAGE, end_message(self.worker, self.batches_sent, self.sink.rows, schedule))
        elif schedule is not None and self.run_dir is not None:
            self.schedule.write(self.run_dir)


def recorder_of(environment: Environment) -> Recorder | None:
    rec: Recorder | None = getattr(environment, "drill_recorder", None)
    return rec


def profile_of(environment: Environment) -> Profile:
    """The run's load profile (parsed once per process)."""
    cached: Profile | None = getattr(environment, "drill_profile", None)
    if cached is None:
        opts = environment.parsed_options
        cached = load_profile(getattr(opts, "drill_profile", None) or "steady")
        environment.drill_profile = cached  # type: ignore[attr-defined]
    return cached


def workers_of(environment: Environment) -> int:
    """How many generator processes share the open-model rate."""
    opts = environment.parsed_options
    explicit = int(getattr(opts, "drill_workers", 0) or 0)
    if explicit > 0:
        return explicit
    processes = int(getattr(opts, "processes", 0) or 0)
    if processes == -1:
        return os.cpu_count() or 1
    if processes > 0:
        return processes
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return max(1, int(getattr(opts, "expect_workers", 1) or 1))
    return 1


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--drill-run-dir", default=os.environ.get("DRILL_RUN_DIR", ""),
                        help="drillbit run directory: every request is recorded under requests/")  # fmt: skip
    parser.add_argument("--drill-profile", default=os.environ.get("DRILL_PROFILE", "steady"),
                        help="load profile: a name in loadtests/profiles or a YAML file")  # fmt: skip
    parser.add_argument("--drill-records-via", choices=("files", "master"),
                        default=os.environ.get("DRILL_RECORDS_VIA", "files"),
                        help="files: each process writes its records into the run directory; master: workers "
                             "send them to the master (workers on other machines)")  # fmt: skip
    parser.add_argument("--drill-workers", type=int, default=int(os.environ.get("DRILL_WORKERS", "0") or 0),
                        help="generator processes sharing an open-model rate (default: --processes or 1)")  # fmt: skip


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        _receive(environment)
    else:
        _record(environment)


def _via_master(environment: Environment) -> bool:
    return getattr(environment.parsed_options, "drill_records_via", "files") == "master"


def _receive(environment: Environment) -> None:
    """The master, when its workers send their records (``--drill-records-via master``): write them
    into the run directory and account for what was lost in transit."""
    opts = environment.parsed_options
    if opts is None or not opts.drill_run_dir or not _via_master(environment):
        return
    receiver = RecordReceiver(Path(opts.drill_run_dir))
    runner = environment.runner
    assert runner is not None
    runner.register_message(RECORDS_MESSAGE, lambda environment, msg, **_: receiver.on_batch(msg.data))
    runner.register_message(RECORDS_END_MESSAGE, lambda environment, msg, **_: receiver.on_end(msg.data))

    def account(**_: Any) -> None:
        path = receiver.close()
        log.info("records received from %d worker(s): %s", len(receiver.workers), path)

    environment.events.test_stop.add_listener(account)
    environment.events.quitting.add_listener(account)


def _record(environment: Environment) -> None:
    """A process that runs users: record from test_start to test_stop. The options are read at
    test_start (a worker's come from its master then): a run directory to write into, or the master
    to send to."""
    state: dict[str, Any] = {}

    def start(**_: Any) -> None:
        opts = environment.parsed_options
        if "rec" in state or opts is None or not opts.drill_run_dir:
            return
        index = int(getattr(environment.runner, "worker_index", 0))
        worker = index if index >= 0 else os.getpid()
        runner = environment.runner
        if _via_master(environment) and isinstance(runner, WorkerRunner):
            rec = Recorder(None, worker, Clock.from_env(), send=lambda kind, body: runner.send_message(kind, body))
        else:
            rec = Recorder(Path(opts.drill_run_dir), worker, Clock.from_env())
        state["rec"] = rec
        environment.drill_recorder = rec  # type: ignore[attr-defined]
        environment.events.request.add_listener(rec.on_request)

        def periodic() -> None:
            while True:
                gevent.sleep(FLUSH_SECONDS)
                rec.sink.flush()

        state["flusher"] = gevent.spawn(periodic)

    def stop(**_: Any) -> None:
        rec: Recorder | None = state.pop("rec", None)
        if rec is None:
            return
        state.pop("flusher").kill()
        environment.events.request.remove_listener(rec.on_request)
        rec.close()
        log.info("recorded %d requests (%s)", rec.sink.rows, "sent to the master" if rec.run_dir is None
                 else rec.sink.path.parent)  # fmt: skip

    environment.events.test_start.add_listener(start)
    environment.events.test_stop.add_listener(stop)
    environment.events.quitting.add_listener(stop)


@events.init.add_listener
def _graceful_sigterm(environment: Environment, **_: Any) -> None:
    """SIGTERM stops the test cleanly, so every request gets recorded and the Parquet files get their footer.

    Headless with a shape, Locust installs its own SIGTERM handler only once the shape has ended;
    until then SIGTERM would kill the process outright. Ending the shape instead makes Locust stop
    the users (open-model users drain their in-flight requests), fire ``test_stop`` (the recorder
    closes its files) and exit as after a normal run.
    """
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return

    def on_term() -> None:
        log.info("SIGTERM: stopping the test")
        shape = getattr(runner, "shape_greenlet", None)
        if shape is not None and not shape.dead:
            shape.kill(block=False)
        else:
            gevent.spawn(runner.quit)

    gevent.signal_handler(signal.SIGTERM, on_term)
