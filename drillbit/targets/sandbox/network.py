"""Network faults on the sandbox's inter-region links (``links.enabled``): partition a region,
degrade its links, isolate the witness, and heal them; each verified across the link itself.

The shapes are kept in the sandbox's state directory (``drillbit.targets.sandbox.links``), so a
later process heals what a crashed drill left cut. The observer (this process) reaches every
service directly, around the links: it sees both sides of a partition.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import statistics
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import psycopg

from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.targets.sandbox import loopback
from drillbit.targets.sandbox.links import (
    LOOPBACK,
    LinkShape,
    LinkSpec,
    link_name,
    links_touching,
    probe,
    read_shapes,
    read_specs,
    wait_applied,
    write_shapes,
)

if TYPE_CHECKING:
    from drillbit.targets.sandbox.sandbox import Sandbox

__all__ = ["Network"]

log = logging.getLogger(__name__)

APPLY_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 2.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Network:
    """The links of one running sandbox."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.root = sb.layout.root

    def specs(self, fault: str) -> list[LinkSpec]:
        specs = read_specs(self.root)
        if not specs:
            raise ConfigError(fault, f"sandbox {self.sb.state.id} runs without inter-region links: set links: "
                                     "{enabled: true} in its topology and bring it up again")  # fmt: skip
        return specs

    def shaped(self) -> dict[str, LinkShape]:
        """Links cut or degraded now (as the state directory says): what ``heal`` must undo."""
        return read_shapes(self.root)[1]

    def _apply(self, shapes: dict[str, LinkShape]) -> None:
        generation = write_shapes(self.root, shapes)
        if not wait_applied(self.root, generation, APPLY_TIMEOUT_S):
            raise EnvironmentFailure(f"the link proxy did not apply the change within {APPLY_TIMEOUT_S:.0f} s: "
                                     f"see {self.sb.layout.logs / 'links.log'}")  # fmt: skip

    # -- faults ----------------------------------------------------------------------------------
    def partition_region(self, region: str, wait_failover_s: float = 0.0) -> dict[str, Any]:
        """Cut ``region`` off from the other region and from the witness. With ``wait_failover_s``,
        wait (bounded) until its database no longer accepts writes and another region's does, and
        report when each happened (seconds after the cut)."""
        self.sb._region(region)
        cut = links_touching(self.specs("partition_region"), region, self.sb.regions)
        primary = self.sb.primary()
        self._apply({**self.shaped(), **{s.name: LinkShape(cut=True) for s in cut}})
        t0 = time.monotonic()
        partitioned_at = _now()
        still = [s.name for s in cut if probe(s, PROBE_TIMEOUT_S) is not None]
        result: dict[str, Any] = {
            "region": region, "partitioned_at": partitioned_at, "primary_before": primary,
            "cut": [s.name for s in cut], "landed": not still,
            "reason": f"still answering across {', '.join(still)}" if still else None,
        }  # fmt: skip
        if wait_failover_s > 0 and primary == region:
            result.update(self._failover(region, t0, wait_failover_s))
        return result

    def _failover(self, isolated: str, t0: float, timeout: float) -> dict[str, Any]:
        """Watch the isolated primary demote itself and another node take over (the observer's view)."""
        others = [r for r in self.sb.regions if r != isolated]
        demoted = promoted = overlap_from = None
        both_s = 0.0
        new_primary = None
        while time.monotonic() - t0 < timeout and (demoted is None or promoted is None):
            old_writable = self.writable(isolated)
            now = time.monotonic() - t0
            if demoted is None and not old_writable:
                demoted = now
            winner = next((r for r in others if self.writable(r)), None)
            if promoted is None and winner:
                promoted, new_primary = now, winner
            if old_writable and winner:  # two primaries at once
                overlap_from = now if overlap_from is None else overlap_from
            elif overlap_from is not None:
                both_s += now - overlap_from
                overlap_from = None
            time.sleep(0.1)
        return {
            "demoted_after_s": None if demoted is None else round(demoted, 2),
            "promoted_after_s": None if promoted is None else round(promoted, 2),
            "new_primary": new_primary,
            "two_primaries_s": round(both_s, 2),  # both accepted writes (sampled every ~0.1 s)
            "leader_ttl_s": self.sb.topology.patroni.ttl,
            "synchronous_mode": self.synchronous_mode(),
        }

    def synchronous_mode(self) -> bool | None:
        """Patroni's synchronous_mode as the cluster runs it (its dynamic configuration), None unknown."""
        for region in self.sb.regions:
            with contextlib.suppress(httpx.HTTPError, ValueError), loopback.client(timeout=2.0) as client:
                answer = client.get(f"{self.sb._restapi(region)}/config")
                if answer.status_code == 200:
                    return bool(answer.json().get("synchronous_mode", False))
        return None

    def writable(self, region: str) -> bool:
        """``region``'s database accepts writes (a primary), seen directly, around the links."""
        topo, port = self.sb.topology, self.sb.state.port_map.postgres[region]
        conninfo = (f"host={LOOPBACK} port={port} dbname={topo.database.name} user={topo.database.user} "
                    f"passfile={self.sb.layout.pgpass} connect_timeout=1")  # fmt: skip
        with contextlib.suppress(psycopg.Error, OSError), psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return row is not None and row[0] is False
        return False

    def degrade_link(
        self, region: str, latency_ms: float = 0.0, jitter_ms: float = 0.0, bandwidth_kbps: float = 0.0
    ) -> dict[str, Any]:
        """Delay (``latency_ms`` ± ``jitter_ms`` added to each round trip) and/or throttle
        (``bandwidth_kbps``, kilobits/s) every link ``region`` crosses; measured across the link."""
        self.sb._region(region)
        if latency_ms < 0 or jitter_ms < 0 or bandwidth_kbps < 0 or jitter_ms > latency_ms:
            raise ConfigError("degrade_link", "latency_ms, jitter_ms and bandwidth_kbps must be >= 0, and jitter_ms "
                                              "<= latency_ms")  # fmt: skip
        if not (latency_ms or bandwidth_kbps):
            raise ConfigError("degrade_link", "give latency_ms or bandwidth_kbps: nothing would change")
        links = links_touching(self.specs("degrade_link"), region, self.sb.regions)
        shape = LinkShape(latency_ms=latency_ms, jitter_ms=jitter_ms, bandwidth_kbps=bandwidth_kbps)
        self._apply({**self.shaped(), **{s.name: shape for s in links}})
        result: dict[str, Any] = {"region": region, "degraded_at": _now(), "links": [s.name for s in links],
                                  **{k: v for k, v in vars(shape).items() if k != "cut"}}  # fmt: skip
        pg = next(s for s in links if s.service == "postgres" and s.region == region)
        problems = []
        if latency_ms:
            added = self._added_latency_ms(pg)
            result["measured_added_latency_ms"] = added
            if added is None or added < 0.8 * (latency_ms - jitter_ms):
                problems.append(f"{pg.name}: round trip grew by {added} ms, not ~{latency_ms:g} ms")
        if bandwidth_kbps:
            rest = next(s for s in links if s.service == "restapi" and s.region == region)
            measured = self._throughput_kbps(rest)
            result["measured_kbps"] = measured
            if measured is None or measured > 1.5 * bandwidth_kbps:
                problems.append(f"{rest.name}: a transfer ran at {measured} kbit/s, not <= {bandwidth_kbps:g}")
        return {**result, "landed": not problems, "reason": "; ".join(problems) or None}

    @staticmethod
    def _added_latency_ms(spec: LinkSpec, samples: int = 3) -> float | None:
        through = [t for _ in range(samples) if (t := probe(spec, PROBE_TIMEOUT_S + 10)) is not None]
        direct = [t for _ in range(samples) if (t := probe(spec, PROBE_TIMEOUT_S, direct=True)) is not None]
        if len(through) < samples or len(direct) < samples:
            return None
        return round((statistics.median(through) - statistics.median(direct)) * 1000, 1)

    @staticmethod
    def _throughput_kbps(spec: LinkSpec) -> float | None:
        """kbit/s of one Patroni REST answer (GET /cluster) read across the link."""
        started = time.monotonic()
        got = 0
        try:
            with socket.create_connection((LOOPBACK, spec.listen), timeout=30) as s:
                s.sendall(f"GET /cluster HTTP/1.0\r\nHost: {LOOPBACK}\r\n\r\n".encode())
                while chunk := s.recv(65536):
                    got += len(chunk)
        except OSError:
            return None
        took = time.monotonic() - started
        return round(got * 8 / 1000 / took, 1) if got and took > 0 else None

    def degrade_replication(self, region: str, bandwidth_kbps: float = 0.0, latency_ms: float = 0.0) -> dict[str, Any]:
        """Throttle and/or delay the replication stream out of ``region``'s PostgreSQL (its
        ``replication@`` link: what the other regions' replicas stream and rewind from) and nothing
        else: clients, Patroni's REST API and the witness keep their paths. Landed when PostgreSQL
        still answers across the link (shaped, not cut); the lag it causes is the drill's to watch."""
        self.sb._region(region)
        if bandwidth_kbps < 0 or latency_ms < 0 or not (bandwidth_kbps or latency_ms):
            raise ConfigError("degrade_replication", "give bandwidth_kbps and/or latency_ms, each > 0")
        name = link_name("replication", region)
        spec = next((s for s in self.specs("degrade_replication") if s.name == name), None)
        if spec is None:
            raise ConfigError("degrade_replication", f"the sandbox has no {name} link: bring it up again with this "
                                                     "drillbit (links: {enabled: true})")  # fmt: skip
        self._apply({**self.shaped(), name: LinkShape(latency_ms=latency_ms, bandwidth_kbps=bandwidth_kbps)})
        answers = probe(spec, PROBE_TIMEOUT_S + 10)
        return {"region": region, "link": name, "bandwidth_kbps": bandwidth_kbps, "latency_ms": latency_ms,
                "degraded_at": _now(), "landed": answers is not None,
                "reason": None if answers is not None else f"PostgreSQL does not answer across {name}"}  # fmt: skip

    def isolate_witness(self) -> dict[str, Any]:
        """Cut every region's way to the witness (etcd): Patroni loses its DCS everywhere."""
        cut = [s for s in self.specs("isolate_witness") if s.service == "etcd"]
        self._apply({**self.shaped(), **{s.name: LinkShape(cut=True) for s in cut}})
        isolated_at = _now()
        still = [s.name for s in cut if probe(s, PROBE_TIMEOUT_S) is not None]
        witness_up = bool(cut) and probe(cut[0], PROBE_TIMEOUT_S, direct=True) is not None
        reason = f"still answering across {', '.join(still)}" if still else None
        return {"isolated_at": isolated_at, "cut": [s.name for s in cut], "witness_up": witness_up,
                "landed": not still, "reason": reason}  # fmt: skip

    # -- healing ---------------------------------------------------------------------------------
    def heal(self) -> dict[str, Any]:
        """Clear every link (idempotent); landed when every link whose service answers directly
        answers across the link too."""
        specs = read_specs(self.root)
        was = sorted(self.shaped())
        if not specs:
            return {"healed": [], "landed": True}
        self._apply({})
        broken = [s.name for s in specs if probe(s, PROBE_TIMEOUT_S, direct=True) is not None
                  and probe(s, PROBE_TIMEOUT_S) is None]  # fmt: skip
        if was:
            log.warning("healing links: %s", ", ".join(was))
        return {"healed": was, "landed": not broken,
                "reason": f"not answering across {', '.join(broken)}" if broken else None}  # fmt: skip
