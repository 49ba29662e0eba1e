"""A recording session: the samplers and the load around a target, writing into one run directory.

Shared by ``drill run`` (which injects faults meanwhile) and ``drill observe`` (which only
watches). Starting and stopping are idempotent and ordered so an interrupted drill keeps what it
measured: samplers start before the load and stop after it; every file is flushed as it goes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import yaml

from drillbit.core.clock import Clock
from drillbit.core.errors import EnvironmentFailure
from drillbit.core.events import EventLog, read_events
from drillbit.core.rundir import EVENTS, REPLICAS, REPLICAS_SCHEMA, REQUESTS_DIR
from drillbit.core.safeio import write_text
from drillbit.load.profiles import load_profile
from drillbit.load.runner import start_load
from drillbit.probes.alerts import AlertReceiver
from drillbit.probes.availability import AvailabilitySampler, HttpCheck, PlaceCancelOrder, Transaction
from drillbit.probes.aws import STOP_CONDITION
from drillbit.probes.aws import for_target as aws_samplers
from drillbit.probes.definitions import load_probe_definitions
from drillbit.probes.integrity import acked_heartbeat_orders, check_integrity, load_integrity_definitions
from drillbit.probes.marketdata import MarketDataSampler
from drillbit.probes.replicas import ReplicaSource, ReplicasSampler
from drillbit.probes.replication import ReplicationLagSampler, ReplicationLagSource
from drillbit.probes.rpo import HeartbeatWriter
from drillbit.probes.samplers import ParquetSink, Sampler, SamplerDied, TickSampler
from drillbit.targets.kubewatch import ClusterWatch, for_target

__all__ = ["AlertWiring", "LoadSpec", "Session", "WatchedReplicas", "drill_profile", "stop_condition"]

log = logging.getLogger(__name__)

#: the profile as run (stretched to cover the drill) is kept in the run directory
PROFILE_AS_RUN = "profile.yaml"
#: Locust's own running stats (locust_stats_history.csv), for the live view only
LIVE_STATS = "locust"


@dataclass(frozen=True)
class LoadSpec:
    profile: str  # name or path
    locustfile: str = "trader"
    processes: int = 1
    master_bind: tuple[str, int] | None = None  # remote workers connect here (drill worker); None: local ones


def drill_profile(profile: str, run_dir: Path, cover_s: float) -> Path:
    """The profile with its last stage stretched so the load covers ``cover_s`` seconds; the drill
    stops it when it is done. Written to the run directory as run."""

    prof = load_profile(profile)
    stages = [s.model_dump(exclude_none=True) for s in prof.stages]
    short = cover_s - prof.duration
    if short > 0:
        stages[-1]["duration"] = stages[-1]["duration"] + math.ceil(short)
    data = {**prof.model_dump(exclude_none=True), "stages": stages}
    path = run_dir / PROFILE_AS_RUN
    return write_text(path, yaml.safe_dump(data, sort_keys=False))


class WatchedReplicas(Sampler):
    """The replicas sampler of a Kubernetes target, from the cluster's watches (``drillbit.targets.kubewatch``):
    a row per zone on every change, and every ``interval`` while the watches are live; a tick while one is
    down raises (counted as a probe error: a gap, never a stale count). Restarts, Events and the HPA go to
    events.jsonl."""

    def __init__(self, watch: ClusterWatch, run_dir: Path, *, clock: Clock, interval: float = 1.0) -> None:
        self.watch, self.run_dir, self.clock, self.interval = watch, run_dir, clock, interval
        self.path = run_dir / REPLICAS
        self.sink = ParquetSink(self.path, REPLICAS_SCHEMA)
        self.events: EventLog | None = None
        super().__init__()
        self._ticks = TickSampler(self._probe, clock=clock, interval=interval, max_in_flight=1,
                                  on_flush=self.sink.flush, name="replicas")  # fmt: skip

    def _probe(self, tick: float) -> None:
        self.watch.sample()  # WatchGap while a watch is down: counted and timed by TickSampler

    def _prepare(self) -> None:
        self.events = EventLog(self.run_dir / EVENTS, self.clock)
        try:
            self.watch.start(self.sink, self.events)
        except BaseException:  # not started: nothing of it stays open
            self.events.close()
            raise

    def _release(self) -> None:
        self.watch.stop()
        if self.events is not None:
            self.events.close()

    def _meta(self) -> dict[str, Any]:
        return {"sampler": "replicas", "source": "kubernetes watch", "interval_s": self.interval,
                **self._ticks.stats(), "watch": self.watch.stats()}  # fmt: skip

    @property
    def died(self) -> str | None:
        return self._ticks.died or self.watch.died

    def stop(self) -> None:
        super().stop()
        if self.watch.died is not None:
            raise SamplerDied(f"replicas sampler: {self.watch.died}")


def stop_condition(run_dir: Path) -> dict[str, Any] | None:
    """The stop condition that fired during the run (the first ``stop_condition`` event), else None."""
    path = run_dir / EVENTS
    return next((e for e in read_events(path) if e.get("kind") == STOP_CONDITION), None) if path.exists() else None


@dataclass(frozen=True)
class AlertWiring:
    """Where the target's Alertmanager sends webhooks (the drill listens there), and what the drill expects."""

    bind: str | None  # host:port; None: no Alertmanager is wired to drillbit
    expect: list[dict[str, Any]] | None  # the experiment's expect_alerts ({alert, when}); None: not declared
    prometheus_url: str | None = None
    alertmanager_url: str | None = None


class Session:
    """Availability probe, heartbeat writer, replica and replication-lag samplers and load generator, on one clock.

    An AWS target's samplers come too (``drillbit.probes.aws``): its stop-condition alarms
    call ``on_stop_condition`` (the runner's: interrupt the drill) when one goes to ALARM."""

    def __init__(
        self,
        run_dir: Path,
        clock: Clock,
        *,
        api_url: str,
        run_id: str,
        write_path: bool = True,
        dsn: str | None = None,
        heartbeat_via: str = "api",
        replicas: ReplicaSource | None = None,
        load: LoadSpec | None = None,
        cover_s: float = 600.0,
        availability_interval: float = 0.1,
        on_stop_condition: Callable[[str], None] | None = None,
        alerts: AlertWiring | None = None,
        marketdata: bool = False,
    ) -> None:
        self.run_dir, self.clock, self.api_url, self.run_id = run_dir, clock, api_url.rstrip("/"), run_id
        self.dsn, self.heartbeat_via, self.replica_source = dsn, heartbeat_via, replicas
        self.load_spec, self.cover_s, self.write_path = load, cover_s, write_path
        self.availability_interval = availability_interval
        self.on_stop_condition = on_stop_condition
        self.alert_wiring = alerts
        self.marketdata = marketdata and write_path  # the probe trades: only through the trading API
        self.alert_receiver: AlertReceiver | None = None
        self.probes = load_probe_definitions()  # the platform's own (probes/trading.yaml): bad input fails here
        self.integrity, self.integrity_source = load_integrity_definitions()  # probes/integrity.yaml: likewise
        self.samplers: list[Sampler] = []
        self.heartbeat: HeartbeatWriter | None = None
        self.load: Any = None  # drillbit.load.runner.LoadRun
        self.load_result: Any = None

    def _transaction(self) -> Transaction:
        # the write path (place + cancel an order) when the target is the trading API; else readiness
        if self.write_path:
            tx = self.probes.synthetic_transaction
            return PlaceCancelOrder(self.api_url, self.run_id, symbol=tx.symbol, price=tx.price,
                                    orders_path=tx.orders_path.rstrip("/"))  # fmt: skip
        return HttpCheck(self.api_url)

    def start(self) -> None:
        """Start samplers, then the load. Raises EnvironmentFailure when the target cannot be measured."""
        wiring = self.alert_wiring
        if wiring is not None and wiring.bind:  # first: an alert firing in the baseline is evidence too
            self.alert_receiver = AlertReceiver(wiring.bind, self.run_dir, self.clock, expect=wiring.expect,
                                                prometheus_url=wiring.prometheus_url,
                                                alertmanager_url=wiring.alertmanager_url).start()  # fmt: skip
        self.samplers.append(AvailabilitySampler(self._transaction(), self.run_dir, clock=self.clock,
                                                 interval=self.availability_interval).start())  # fmt: skip
        if self.marketdata:
            orders_path = self.probes.synthetic_transaction.orders_path
            md = MarketDataSampler(self.api_url, self.run_dir, self.run_id, clock=self.clock,
                                   probe=self.probes.marketdata, orders_path=orders_path)  # fmt: skip
            self.samplers.append(md.start())
        if self.dsn is not None:
            api = self.api_url if self.heartbeat_via == "api" else None
            self.heartbeat = HeartbeatWriter(self.dsn, self.run_dir, self.run_id, clock=self.clock, api_url=api,
                                             table=self.probes.heartbeat.table)  # fmt: skip
            self.samplers.append(self.heartbeat.start())
        if self.replica_source is not None:  # a Kubernetes target's are watched; any other's polled
            watch = for_target(self.replica_source, clock=self.clock)
            replicas = (ReplicasSampler(self.replica_source, self.run_dir, clock=self.clock) if watch is None
                        else WatchedReplicas(watch, self.run_dir, clock=self.clock))  # fmt: skip
            self.samplers.append(replicas.start())
            if isinstance(self.replica_source, ReplicationLagSource):  # a target that reads its replicas' lag
                self.samplers.append(ReplicationLagSampler(self.replica_source, self.run_dir, clock=self.clock).start())
            for sampler in aws_samplers(self.replica_source, self.run_dir, clock=self.clock,
                                        on_stop=self.on_stop_condition):  # fmt: skip
                self.samplers.append(sampler.start())
        if self.load_spec is not None:
            profile = drill_profile(self.load_spec.profile, self.run_dir, self.cover_s)
            live_stats = ["--csv", str(self.run_dir / LIVE_STATS), "--csv-full-history"]
            spec = self.load_spec
            parts = urlsplit(self.api_url)  # the load generator's host is the service's base URL
            host = f"{parts.scheme}://{parts.netloc}"
            self.load = start_load(spec.locustfile, profile, host, self.run_dir, processes=spec.processes,
                                   master_bind=spec.master_bind,
                                   clock=self.clock, extra_args=live_stats)  # fmt: skip

    def wait_for_load(self, timeout: float = 30.0, poll: float = 0.2) -> bool:
        """Until every generator process has recorded requests (its first part file exists; a remote
        worker's, once the master wrote it), at most ``timeout`` seconds: a drill's baseline begins with
        its load flowing, not with Locust still starting (two processes take seconds longer than one).
        False on timeout, or when the generator exited first (the load's own result says why)."""
        if self.load is None:
            return True
        wanted = max(1, self.load_spec.processes if self.load_spec is not None else 1)
        deadline = time.monotonic() + timeout
        requests = self.run_dir / REQUESTS_DIR
        while time.monotonic() < deadline and self.load.running():
            if len({f.name.split(".")[0] for f in requests.glob("worker-*.parquet")}) >= wanted:
                return True
            time.sleep(poll)
        log.warning("the load was not flowing from all %d generator process(es) within %.0f s", wanted, timeout)
        return False

    def stop_load(self) -> None:
        if self.load is not None and self.load_result is None:
            try:
                self.load_result = self.load.stop()
            except EnvironmentFailure as err:
                log.error("load generator: %s", err)

    def stop(self) -> None:
        """Stop the load, then the samplers (each flushes and closes its file); idempotent.

        Raises SamplerDied (after stopping every sampler) when one of them died during the run.
        """
        self.stop_load()
        died: list[str] = []
        for sampler in reversed(self.samplers):
            try:
                sampler.stop()
            except SamplerDied as err:
                died.append(str(err))
        if self.alert_receiver is not None:  # last: a notification still on its way counts
            self.alert_receiver.stop()
            self.alert_receiver = None
        if died:
            raise SamplerDied("; ".join(died))

    def dead_samplers(self) -> list[str]:
        """Why each sampler that died during the run died."""
        return [f"{type(s).__name__}: {s.died}" for s in self.samplers if s.died is not None]

    def readback(self, retry_for: float = 60.0) -> bool:
        """Read the heartbeat back for RPO (after recovery). False when there is no heartbeat or it failed."""
        if self.heartbeat is None:
            return False
        try:
            self.heartbeat.readback(retry_for=retry_for)
        except (psycopg.Error, OSError) as err:  # RPO is then unmeasured, and says why
            log.error("heartbeat read-back failed: %s", err)
            return False
        return True

    def check_integrity(self, retry_for: float = 30.0) -> None:
        """The trading-integrity checks against the database after recovery (``samples/integrity.json``);
        the heartbeat's acknowledged orders (through the API) must each exist exactly once."""
        via_api = self.heartbeat is not None and self.heartbeat.api_url is not None
        acked = acked_heartbeat_orders(self.run_dir, self.run_id) if via_api else []
        check_integrity(self.run_dir, self.dsn, acked=acked, clock=self.clock, definitions=self.integrity,
                        source=str(self.integrity_source), retry_for=retry_for)  # fmt: skip
