"""The run directory contract: file names and columnar schemas every stage agrees on.

A run directory (``runs/<UTC timestamp>-<experiment>/``) is the only contract between stages:
samplers and the load recorder write it, analyzers read it. All times are epoch seconds (UTC)
from ``drillbit.core.clock.Clock`` (float64); durations are seconds (float64).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "ANALYSIS_DIR",
    "AVAILABILITY",
    "AVAILABILITY_SCHEMA",
    "EVENTS",
    "HARNESS",
    "HARNESS_REMOTE",
    "HARNESS_SCHEMA",
    "HEARTBEAT",
    "HEARTBEAT_READBACK",
    "HEARTBEAT_READBACK_SCHEMA",
    "HEARTBEAT_SCHEMA",
    "INTEGRITY",
    "LOAD_META",
    "MARKETDATA",
    "MARKETDATA_SCHEMA",
    "PITR",
    "REPLICAS",
    "REPLICAS_SCHEMA",
    "REPLICATION_LAG",
    "REPLICATION_LAG_SCHEMA",
    "REQUESTS_DIR",
    "REQUEST_SCHEMA",
    "TRANSIT_FILE",
    "read_harness",
    "read_transit",
    "request_parts",
]

_label = pa.dictionary(pa.int32(), pa.string())

#: requests/transit.json: the Locust master's account of the records remote workers sent it
#: (drillbit.load.transit): per worker batches and rows sent and received; rows_lost, unaccounted_workers
TRANSIT_FILE = "transit.json"

#: requests/<worker>.parquet: one row per request the load generator sent (every one of them)
REQUESTS_DIR = "requests"
REQUEST_SCHEMA = pa.schema(
    [
        ("name", _label),  # request name (route template, e.g. "POST /orders")
        ("intended", pa.float64()),  # when it was scheduled to be sent (open model); NaN under the closed model
        ("start", pa.float64()),  # when it was actually sent
        ("latency", pa.float64()),  # response received - start (uncorrected)
        ("status", pa.int16()),  # HTTP status; 0 when no response arrived
        ("error", _label),  # null when ok; else an error kind: "http", "timeout", "connection", ...
        ("worker", pa.int16()),  # generator process index
    ]
)



def request_parts(run_dir: Path | str) -> tuple[list[Path], list[Path]]:
    """The request record files of a run (``requests/*.parquet``: each generator process writes
    part files of a few seconds each), as (readable, unreadable): a part without its Parquet footer
    belonged to a process killed while writing it; its rows are lost, and must be counted so."""
    folder = Path(run_dir) / REQUESTS_DIR
    good: list[Path] = []
    bad: list[Path] = []
    for f in sorted(folder.glob("*.parquet")) if folder.exists() else []:
        try:
            pq.ParquetFile(f)
        except (OSError, pa.ArrowInvalid):
            bad.append(f)
            continue
        good.append(f)
    return good, bad


#: load.json: intended vs achieved rate, generator CPU and the saturation verdict
LOAD_META = "load.json"

#: samples/availability.parquet: the synthetic transaction every interval
AVAILABILITY = "samples/availability.parquet"
AVAILABILITY_SCHEMA = pa.schema(
    [
        ("t", pa.float64()),  # when the probe was sent
        ("ok", pa.bool_()),
        ("latency", pa.float64()),  # NaN when no response
        ("status", pa.int16()),  # 0 when no response
        ("error", _label),
    ]
)

#: samples/heartbeat.parquet: the RPO writer's sequence and what the client learned of each write
HEARTBEAT = "samples/heartbeat.parquet"
HEARTBEAT_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("sent", pa.float64()),
        ("acked", pa.float64()),  # when the commit was acknowledged; NaN if not acknowledged
        ("outcome", _label),  # "acked" | "failed" (error answered) | "indeterminate" (timeout, no answer)
        ("error", _label),
    ]
)

#: samples/heartbeat_readback.parquet: which sequence numbers survived, read after recovery
HEARTBEAT_READBACK = "samples/heartbeat_readback.parquet"
HEARTBEAT_READBACK_SCHEMA = pa.schema([("seq", pa.int64()), ("count", pa.int32())])

#: samples/integrity.json: the trading-integrity checks run against the database after recovery
#: (drillbit.probes.integrity): each check's violating ids, or why the checker could not run
INTEGRITY = "samples/integrity.json"

#: samples/pitr.json: a point-in-time restore's evidence (drillbit.faults.restore_to_point): the target
#: time, the archive and the base backup used, the restore's steps, and the restored rows against the source's
PITR = "samples/pitr.json"

#: samples/replicas.parquet: desired/ready replicas per region over time, and which replicas were
#: ready (their identities, e.g. pids; null when the target cannot tell)
REPLICAS = "samples/replicas.parquet"
REPLICAS_SCHEMA = pa.schema(
    [
        ("t", pa.float64()),
        ("region", _label),
        ("desired", pa.int32()),
        ("ready", pa.int32()),
        ("ready_ids", pa.list_(pa.string())),
    ]
)

#: samples/marketdata.parquet: the market-data probe (drillbit.probes.marketdata): its trades' latency from
#: acknowledgement to the feed, the feed's gaps, duplicates and reconnects; a row per event
MARKETDATA = "samples/marketdata.parquet"
MARKETDATA_SCHEMA = pa.schema(
    [
        ("t", pa.float64()),  # a probe trade: its acknowledgement; else when it happened
        ("kind", _label),  # trade, unseen, gap, duplicate, order_error, reconnect, feed
        ("symbol", pa.string()),
        ("seq", pa.int64()),  # the trade's sequence number (a gap: the one that revealed it)
        ("trade_id", pa.int64()),
        ("latency_s", pa.float64()),  # a probe trade: seen - acknowledged
        ("via", _label),  # a probe trade: stream or recovery (a gap fill)
        ("count", pa.int64()),  # a gap: trades skipped
        ("recovered", pa.int64()),  # a gap: of which the gap fill found (null: the fill failed)
        ("detail", pa.string()),
    ]
)

#: samples/replication_lag.parquet: every replica's lag behind the primary, every tick
#: (drillbit.probes.replication); a failed read is a row with ok false (member null: nothing could be read)
REPLICATION_LAG = "samples/replication_lag.parquet"
REPLICATION_LAG_SCHEMA = pa.schema(
    [
        ("t", pa.float64()),  # when the read began
        ("member", _label),  # the replica (the sandbox: its region)
        ("lag_s", pa.float64()),  # seconds of commits not replayed (0: nothing left to replay); NaN unread
        ("lag_bytes", pa.int64()),  # bytes of WAL not replayed
        ("ok", pa.bool_()),
        ("error", pa.string()),
        ("read_s", pa.float64()),  # how long the read took
    ]
)

#: samples/harness.parquet: the harness's own processes, sampled every interval while the load runs
#: (drillbit.load.runner): the drill process (engine and probes), the Locust master or lone generator, and
#: each local generator worker, read by psutil from the drill process: resident memory and CPU. A soak's
#: memory drift is read from it (drillbit.probes.drift); the generators' CPU also feeds load.json's
#: saturation judgement.
HARNESS = "samples/harness.parquet"
#: samples/harness_remote.parquet: the same for remote generator workers (``drill worker`` on another
#: machine), which the drill cannot read: each worker samples itself and sends the sample to the Locust
#: master with its record batches (drillbit.load.transit); the master writes them here, ``remote`` true
HARNESS_REMOTE = "samples/harness_remote.parquet"
HARNESS_SCHEMA = pa.schema(
    [
        ("t", pa.float64()),  # when sampled; the CPU figures cover the interval that ends here
        ("role", _label),  # drill | master | generator (a lone Locust process running users) | worker
        ("worker", pa.int32()),  # a remote worker's index (its records' worker); null for the others
        ("pid", pa.int64()),
        ("host", _label),  # the machine's hostname
        ("remote", pa.bool_()),  # sampled by the process itself and sent to the master
        ("rss_bytes", pa.int64()),  # resident set size
        ("cpu_percent", pa.float64()),  # percent of one core over the interval; NaN on a process's first sample
        ("busy_percent", pa.float64()),  # cpu plus the main thread's wait for a CPU (drillbit.load.cpu); NaN as above
    ]
)

#: analysis/<UTC time>/: re-analyses by `drill analyze` (not part of the run's sealed evidence)
ANALYSIS_DIR = "analysis"

#: events.jsonl: one JSON object per line: {"t": epoch, "kind": "phase"|"fault.inject"|"fault.revert"|..., ...}
EVENTS = "events.jsonl"


def read_transit(run_dir: Path | str) -> dict[str, Any] | None:
    """The transit account of a run whose workers sent their records to the master (None: none did)."""
    path = Path(run_dir) / REQUESTS_DIR / TRANSIT_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def read_harness(run_dir: Path | str) -> pa.Table:
    """The harness samples of a run (``HARNESS`` and ``HARNESS_REMOTE`` together, in ``HARNESS_SCHEMA``).

    A process sampled both ways (a local worker sending its records through the master) keeps the drill's
    own samples (psutil) only. Raises FileNotFoundError when the run has neither file."""
    tables = [pq.read_table(Path(run_dir) / name, schema=HARNESS_SCHEMA)
              for name in (HARNESS, HARNESS_REMOTE) if (Path(run_dir) / name).is_file()]  # fmt: skip
    if not tables:
        raise FileNotFoundError(f"no harness samples in {run_dir} ({HARNESS}): the drill applied no load")
    if len(tables) == 1:
        return tables[0]
    local, remote = tables
    seen = {(h, p) for h, p in zip(local.column("host").to_pylist(), local.column("pid").to_pylist(), strict=True)}
    keep = [(h, p) not in seen for h, p in zip(remote.column("host").to_pylist(), remote.column("pid").to_pylist(),
                                               strict=True)]  # fmt: skip
    return pa.concat_tables([local, remote.filter(pa.array(keep, pa.bool_()))])
