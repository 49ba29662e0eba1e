"""The per-request recorder: a Locust plugin (documented event hooks) that writes EVERY request to Parquet.

A locustfile imports it (``import drillbit.load.recorder``). It adds Locust options

    --drill-run-dir DIR    (or $DRILL_RUN_DIR) record every request under DIR/requests/
    --drill-profile NAME   (or $DRILL_PROFILE) load profile: a name in loadtests/profiles or a file
    --drill-workers N      (or $DRILL_WORKERS) generator processes sharing an open-model rate

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
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from drillbit.core.clock import Clock
from drillbit.load.profiles import Profile, load_profile
from drillbit.load.recording import ABANDONED, NOT_SENT, RequestSink, ScheduleStats, error_kind

__all__ = ["Recorder", "profile_of", "recorder_of", "workers_of"]

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0


class Recorder:
    """One process's sink and schedule counters, fed by Locust's request event."""

    def __init__(self, run_dir: Path, worker: int, clock: Clock) -> None:
        self.run_dir, self.clock = run_dir, clock
        self.sink = RequestSink(run_dir, worker)
        self.schedule = ScheduleStats(worker=worker)

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
        if self.schedule.t0 is not None:
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
    parser.add_argument("--drill-workers", type=int, default=int(os.environ.get("DRILL_WORKERS", "0") or 0),
                        help="generator processes sharing an open-model rate (default: --processes or 1)")  # fmt: skip


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    if isinstance(environment.runner, MasterRunner) or opts is None or not opts.drill_run_dir:
        return
    run_dir = Path(opts.drill_run_dir)
    state: dict[str, Any] = {}

    def start(**_: Any) -> None:
        if "rec" in state:
            return
        index = int(getattr(environment.runner, "worker_index", 0))
        rec = Recorder(run_dir, index if index >= 0 else os.getpid(), Clock.from_env())
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
        log.info("recorded %d requests in %s", rec.sink.rows, rec.sink.path)

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
