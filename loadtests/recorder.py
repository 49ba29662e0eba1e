"""The per-request recorder: a Locust plugin (documented event hooks) writing EVERY request to Parquet.

Imported by a locustfile (``import loadtests.recorder``), it adds ``--drill-run-dir`` and
``--drill-profile`` to Locust's options and, in each process that runs users, streams rows of
``drillbit.rundir.REQUEST_SCHEMA`` to ``<run dir>/requests/worker-<n>.parquet``: columns are
appended to plain lists (about a microsecond a request) and written as a row group every 10,000
rows or every second, so an hour-long soak at thousands of requests a second stays cheap.
Also writes ``worker-<n>.json``: the open model's schedule counters (scheduled, sent, capped).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import gevent
import pyarrow as pa
import pyarrow.parquet as pq
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from drillbit.clock import Clock
from drillbit.rundir import REQUEST_SCHEMA, REQUESTS_DIR

__all__ = ["RequestRecorder", "recorder_of"]

log = logging.getLogger(__name__)

BATCH_ROWS = 10_000
FLUSH_SECONDS = 1.0


def _error_kind(exception: BaseException | None, status: int) -> str | None:
    if exception is None:
        return None
    name = type(exception).__name__.lower()
    if "timeout" in name:
        return "timeout"
    if status == 0:
        return "connection"
    if status >= 400:
        return "http"
    return "assert"


class RequestRecorder:
    """Buffers request rows in columns and streams them to one Parquet file per process."""

    def __init__(self, run_dir: Path, worker: int, clock: Clock) -> None:
        self.run_dir, self.worker, self.clock = run_dir, worker, clock
        self.path = run_dir / REQUESTS_DIR / f"worker-{worker}.parquet"
        self._cols: dict[str, list[Any]] = {f.name: [] for f in REQUEST_SCHEMA}
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0
        self.schedule: dict[str, float] = {"scheduled": 0, "sent": 0, "capped": 0}

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        ctx = context or {}
        status = int(getattr(response, "status_code", 0) or 0)
        cols = self._cols
        cols["name"].append(name if name.startswith(request_type) else f"{request_type} {name}")
        cols["intended"].append(ctx.get("intended", math.nan))
        cols["start"].append(ctx.get("sent", start_time if start_time is not None else math.nan))
        cols["latency"].append(response_time / 1000.0)
        cols["status"].append(status)
        cols["error"].append(_error_kind(exception, status))
        cols["worker"].append(self.worker)
        if len(cols["start"]) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        n = len(self._cols["start"])
        if n == 0:
            return
        batch = pa.RecordBatch.from_pydict(self._cols, schema=REQUEST_SCHEMA)
        self._cols = {f.name: [] for f in REQUEST_SCHEMA}
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, REQUEST_SCHEMA)
        self._writer.write_batch(batch)
        self.rows += n

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        meta = self.run_dir / REQUESTS_DIR / f"worker-{self.worker}.json"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"worker": self.worker, "rows": self.rows, **self.schedule}))


def recorder_of(environment: Environment) -> RequestRecorder | None:
    rec: RequestRecorder | None = getattr(environment, "drill_recorder", None)
    return rec


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--drill-run-dir",
        default=os.environ.get("DRILL_RUN_DIR", ""),
        help="drillbit run directory: every request is recorded under requests/",
    )
    parser.add_argument("--drill-profile", default=os.environ.get("DRILL_PROFILE", "steady"),
                        help="load profile name (loadtests/profiles) or file")  # fmt: skip


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    if isinstance(environment.runner, MasterRunner) or opts is None or not opts.drill_run_dir:
        return
    state: dict[str, Any] = {}

    def start(**_: Any) -> None:
        if "rec" in state:
            return
        index = getattr(environment.runner, "worker_index", 0)
        worker = index if index >= 0 else os.getpid()
        rec = RequestRecorder(Path(opts.drill_run_dir), worker, Clock())
        state["rec"] = rec
        environment.drill_recorder = rec  # type: ignore[attr-defined]
        environment.events.request.add_listener(rec.on_request)

        def periodic() -> None:
            while True:
                gevent.sleep(FLUSH_SECONDS)
                rec.flush()

        state["flusher"] = gevent.spawn(periodic)

    def stop(**_: Any) -> None:
        rec = state.pop("rec", None)
        if rec is None:
            return
        state.pop("flusher").kill()
        environment.events.request.remove_listener(rec.on_request)
        rec.close()

    environment.events.test_start.add_listener(start)
    environment.events.test_stop.add_listener(stop)
    environment.events.quitting.add_listener(stop)
