"""The open model's senders keep the schedule exact: a real Locust process against a loopback server we control.

The server (in this process, on port 0) stamps every request with the run's own clock, the one handed
to Locust, so its stall window and the records' intended times share one timebase. It can stall (hold
every request that arrives in a window until the window ends) or trickle (answer one byte at a time,
never finishing, so a request stays in flight).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drillbit.core.clock import Clock
from drillbit.core.rundir import REQUESTS_DIR, request_parts
from drillbit.load.runner import LoadResult, start_load

pytestmark = pytest.mark.slow

STALL_S = 1.0
TRICKLE_EVERY_S = 0.2


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, clock: Clock) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.clock = clock
        self.stall: tuple[float, float] | None = None  # (start, end) on the run's clock
        self.trickle = threading.Event()
        self.closing = threading.Event()
        self.arrivals: list[float] = []
        self.trickling = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stall_in(self, seconds: float) -> tuple[float, float]:
        start = self.clock.now() + seconds
        self.stall = (start, start + STALL_S)
        return self.stall

    def wait_arrivals(self, n: int, timeout: float = 30.0) -> None:
        """Until the load is flowing (Locust takes a second or two to start)."""
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < n:
            assert time.monotonic() < deadline, f"only {len(self.arrivals)} requests arrived"
            time.sleep(0.05)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator's pool expects
    server: _Server

    def do_GET(self) -> None:
        srv = self.server
        now = srv.clock.now()
        srv.arrivals.append(now)
        stall = srv.stall
        if stall is not None and stall[0] <= now < stall[1]:
            time.sleep(stall[1] - now)
        if srv.trickle.is_set():
            self._trickle()
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def _trickle(self) -> None:
        srv = self.server
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        with srv.lock:
            srv.trickling += 1
        try:
            while not srv.closing.wait(TRICKLE_EVERY_S):
                self.wfile.write(b".")
                self.wfile.flush()
        except OSError:
            return  # the client went away: what the test wanted
        finally:
            with srv.lock:
                srv.trickling -= 1
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> Iterator[_Server]:
    srv = _Server(clock)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.closing.set()
        srv.shutdown()
        srv.server_close()
        thread.join(10)


@dataclass
class _Records:
    intended: np.ndarray
    start: np.ndarray
    latency: np.ndarray
    error: np.ndarray  # error kind, "" when none
    t0: float
    t_end: float


def _profile(path: Path, rate: float, duration: float, max_in_flight: int, timeout: float = 5.0) -> Path:
    path.write_text(f"name: {path.stem}\nmodel: open\narrival: uniform\nstages:\n  - {{duration: {duration}, "
                    f"rate: {rate}}}\nmax_in_flight: {max_in_flight}\ntimeout_s: {timeout}\n")  # fmt: skip
    return path


def _records(run_dir: Path) -> _Records:
    files, torn = request_parts(run_dir)
    assert files and not torn, (files, torn)
    table = pa.concat_tables([pq.read_table(f) for f in files])
    meta = json.loads((run_dir / REQUESTS_DIR / "worker-0.json").read_text())
    error = table.column("error").cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False)
    return _Records(
        intended=table.column("intended").to_numpy(), start=table.column("start").to_numpy(),
        latency=table.column("latency").to_numpy(), error=error.astype(str), t0=meta["t0"], t_end=meta["t_end"],
    )  # fmt: skip


def _grid(rec: _Records, rate: float, n: int) -> np.ndarray:
    """The schedule the profile makes: request k intended at t0 + k / rate (as drillbit.load.profiles computes it)."""
    return np.array([rec.t0 + k / rate for k in range(n)])


def _run(server: _Server, clock: Clock, tmp_path: Path, rate: float, duration: float, cap: int) -> LoadResult:
    """Start the load, stall the server for STALL_S once it flows, and wait for the profile to end."""
    load = start_load("ping", _profile(tmp_path / "p.yaml", rate, duration, cap), server.url, tmp_path / "run",
                      clock=clock)  # fmt: skip
    server.wait_arrivals(20)
    server.stall_in(0.5)
    return load.wait(duration + 60)


def test_every_request_is_recorded_once_at_its_intended_time_on_the_schedule_grid(
    server: _Server, clock: Clock, tmp_path: Path
) -> None:
    rate, duration = 200.0, 3.0
    load = start_load("ping", _profile(tmp_path / "p.yaml", rate, duration, 50), server.url, tmp_path / "run",
                      clock=clock)  # fmt: skip
    result = load.wait(duration + 60)
    rec = _records(tmp_path / "run")
    n = round(rate * duration)
    assert result.recorded == result.due == result.sent == n and result.not_sent == result.abandoned == 0, result
    assert len(server.arrivals) == n  # the server saw each one once
    # exactly the schedule: each intended time once, none shifted by when it was actually sent
    assert np.array_equal(np.sort(rec.intended), _grid(rec, rate, n))
    assert bool(np.all(rec.start >= rec.intended))  # and none left before its time


def test_requests_intended_during_a_stall_carry_the_stall_in_their_latency(
    server: _Server, clock: Clock, tmp_path: Path
) -> None:
    """Room for every stalled request (cap 400 > 100 req/s x 1 s): they go out on time, into the stall."""
    rate = 100.0
    result = _run(server, clock, tmp_path, rate, 5.0, cap=400)
    assert server.stall is not None
    start, end = server.stall
    rec = _records(tmp_path / "run")
    assert result.recorded == result.due == result.sent and result.capped == 0, result
    during = (rec.intended >= start) & (rec.intended < end)
    grid = _grid(rec, rate, result.due)
    # every request the schedule intended during the stall is recorded, at its schedule time
    assert np.array_equal(np.sort(rec.intended[during]), grid[(grid >= start) & (grid < end)])
    assert during.sum() >= rate * STALL_S - 1
    # the server answered none of them before the stall ended: measured from the intended time, each one's
    # latency holds the rest of the stall (the request intended at its start waited all of it)
    answered = rec.start[during] + rec.latency[during]
    assert bool(np.all(answered >= end)), (answered - end).min()
    corrected = answered - rec.intended[during]
    assert corrected.max() >= STALL_S * 0.99, corrected.max()
    # sent into the stall, not held back until it was over (which would hide it: coordinated omission)
    assert int((rec.start[during] < end).sum()) >= 0.9 * during.sum()


def test_waits_for_the_in_flight_cap_are_not_counted_as_generator_lateness(
    server: _Server, clock: Clock, tmp_path: Path
) -> None:
    """Cap 4: the stall holds every slot, the schedule waits ~1 s for the server, then catches up."""
    result = _run(server, clock, tmp_path, 100.0, 5.0, cap=4)
    assert result.recorded == result.due == result.sent and result.not_sent == 0, result
    assert result.capped > 0 and result.cap_wait_s >= 0.8 * STALL_S, result
    # requests left up to a second behind their intended time ...
    assert result.send_lateness_p99_ms is not None and result.send_lateness_p99_ms >= 500, result
    # ... and that second was the cap's (the server's doing), not the generator's
    assert result.generator_lateness_p99_ms is not None
    assert result.generator_lateness_p99_ms < 0.2 * result.send_lateness_p99_ms, result
    assert not any(r.startswith("generator lateness") for r in result.reasons), result.reasons


def test_a_stop_records_due_requests_as_not_sent_and_those_in_flight_as_abandoned(
    server: _Server, clock: Clock, tmp_path: Path
) -> None:
    """The server starts answering one byte at a time: the cap's 3 requests never finish, the schedule backs up."""
    rate, cap = 20.0, 3
    profile = _profile(tmp_path / "p.yaml", rate, 30.0, cap, timeout=1.0)
    load = start_load("ping", profile, server.url, tmp_path / "run", clock=clock)
    server.wait_arrivals(10)
    server.trickle.set()
    deadline = time.monotonic() + 10
    while server.trickling < cap:
        assert time.monotonic() < deadline, server.trickling
        time.sleep(0.05)
    time.sleep(1.0)  # ~20 more requests fall due behind the full cap
    result = load.stop()
    rec = _records(tmp_path / "run")
    assert result.abandoned == cap and result.not_sent >= 10, result
    assert result.recorded == result.sent + result.not_sent == result.due, result
    abandoned, unsent = rec.error == "abandoned", rec.error == "not_sent"
    assert int(abandoned.sum()) == cap and int(unsent.sum()) == result.not_sent
    assert bool(np.all(np.isfinite(rec.start[abandoned]))) and bool(np.all(np.isnan(rec.latency[abandoned])))
    assert bool(np.all(np.isnan(rec.start[unsent])))
    # sent, abandoned and not sent together are the schedule up to the stop, each time once
    assert np.array_equal(np.sort(rec.intended), _grid(rec, rate, result.due))
    assert rec.intended.max() <= rec.t_end
