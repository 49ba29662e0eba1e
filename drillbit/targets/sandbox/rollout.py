"""A zero-downtime rolling update of the sandbox's API replicas (seed R1.4).

The deploy record is one file (``render.api_version_file``): every replica reads the version it
runs from it when it starts, so after ``roll_out`` writes the new version there, whatever the
supervisor starts from then on (a respawn after a kill, an autoscaler scale-out, a restored
region) runs the new version. The roll then replaces the running replicas, region by region, at
most ``max_unavailable`` at a time: it waits until every replica of the region answers /readyz on
its own socket, asks the supervisor to SIGTERM an old one, waits for it to exit (it drains: see
``drillbit.sut.serve``) and for the supervisor's replacement to be ready, and moves on. With a surge
(``max_surge``, the Deployment's maxSurge) it first starts that many new replicas and waits until
they are ready, then lets the supervisor stop as many of the oldest, so capacity never dips: the
manifests' maxUnavailable 0, maxSurge 1 is what R1.4 asks for. Between steps the number of
replicas is the region's own (the autoscaler may change it meanwhile without confusing the roll).

Every fact is read back from the replicas themselves over their own unix sockets (``/healthz``
reports version and pid), never from what was asked for.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.targets.sandbox import autoscaler, loopback
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.render import API_DRAIN_TIMEOUT_S, api_version_file
from drillbit.targets.sandbox.supervisor import Supervisor


class Rollable(Protocol):
    """What a roll needs of the sandbox (``drillbit.targets.sandbox.sandbox.Sandbox``): its regions,
    the run-directory layout (the replicas' sockets) and the process supervisor."""

    @property
    def regions(self) -> list[str]: ...

    @property
    def layout(self) -> Layout: ...

    @property
    def supervisor(self) -> Supervisor: ...

__all__ = ["DEFAULT_TIMEOUT_S", "ReplicaInfo", "roll_out", "snapshot", "versions"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0
PROBE_TIMEOUT_S = 1.0
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


@dataclass(frozen=True)
class ReplicaInfo:
    """One live replica, as it describes itself on its own socket."""

    replica: str
    pid: int
    version: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _get(sock: Path, path: str) -> httpx.Response | None:
    try:
        with loopback.client(uds=sock, timeout=PROBE_TIMEOUT_S) as client:
            return client.get(f"http://replica{path}")
    except httpx.HTTPError:
        return None


def _sockets(sb: Rollable, region: str) -> list[Path]:
    return sorted(sb.layout.run.glob(f"api-{region}-*.sock"))


def snapshot(sb: Rollable, region: str) -> list[ReplicaInfo]:
    """The replicas of ``region`` that answer /healthz on their own socket (a draining or dead
    replica's socket refuses connections), ordered by replica name."""
    out = []
    for sock in _sockets(sb, region):
        r = _get(sock, "/healthz")
        if r is None or r.status_code != 200:
            continue
        try:
            body = r.json()
            out.append(ReplicaInfo(str(body["replica"]), int(body["pid"]), str(body["version"])))
        except (ValueError, KeyError, TypeError) as err:
            log.warning("replica socket %s answered /healthz without replica/pid/version: %s", sock, err)
    return sorted(out, key=lambda i: i.replica)


def _ready_count(sb: Rollable, region: str) -> int:
    ready = 0
    for sock in _sockets(sb, region):
        r = _get(sock, "/readyz")
        ready += r is not None and r.status_code == 200
    return ready


def _active(sb: Rollable, region: str) -> bool:
    return sb.supervisor.status(f"api-{region}") == "active"


def versions(sb: Rollable) -> dict[str, list[str]]:
    """Region -> the versions its live replicas report (one entry per replica, by replica name)."""
    return {region: [i.version for i in snapshot(sb, region)] for region in sb.regions}


def _exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # gone, awaiting its reaper
    except psutil.NoSuchProcess:
        return True


def _all_exited(pids: list[int]) -> bool:
    return all(_exited(pid) for pid in pids)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def wait(self, what: str, check: Callable[[], bool], interval: float = 0.05) -> float:
        """Poll ``check`` until true; seconds waited; EnvironmentFailure once the roll's time is up."""
        start = time.monotonic()
        while not check():
            if time.monotonic() >= self.at:
                raise _Timeout(f"{what}: not within the roll's {self.seconds:.0f} s")
            time.sleep(interval)
        return time.monotonic() - start


class _Timeout(EnvironmentFailure):
    pass


def _write_version(path: Path, version: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a replica starting meanwhile reads the old or the new, never half


def _check_sandbox_supports_it(sb: Rollable) -> None:
    if "--version-file" not in sb.layout.circus_ini.read_text(encoding="utf-8"):
        raise EnvironmentFailure(
            "this sandbox was started by an older drillbit whose replicas do not read a version file: "
            "restart it (drill env down, drill env up)"
        )


def _at_most_left(sb: Rollable, name: str, pids: set[int], most: int) -> bool:
    return len(set(sb.supervisor.pids(name)) & pids) <= most


def _roll_region(
    sb: Rollable, region: str, version: str, budget: tuple[int, int], deadline: _Deadline,
    replaced: list[dict[str, Any]],
) -> None:  # fmt: skip
    """Replace the region's old replicas step by step, as a Deployment's rolling update does: start
    ``max_surge`` new replicas and wait until they are ready, then take as many old ones away plus
    ``max_unavailable`` more (SIGTERM: they drain), and wait for their replacements to be ready."""
    max_surge, max_unavailable = budget
    name = f"api-{region}"

    def all_ready() -> bool:
        return _ready_count(sb, region) >= sb.supervisor.numprocesses(name)

    while True:
        deadline.wait(f"every replica of {region} ready", all_ready)
        old = [i for i in snapshot(sb, region) if i.version != version]
        if not old:
            return
        before = set(sb.supervisor.pids(name))
        t0 = time.monotonic()
        signalled_at = _now()
        surge = min(max_surge, len(old))
        if surge:  # incr/decr, not a size read and written back: an autoscaler decision meanwhile stands
            sb.supervisor.incr(name, surge)  # started at the new version (the deploy record)
            deadline.wait(f"{surge} surge replica(s) of {region} ready", all_ready)
            # back by as many: the supervisor stops the oldest (old-version) replicas; they drain
            sb.supervisor.decr(name, surge)
            left = functools.partial(_at_most_left, sb, name, {i.pid for i in old}, len(old) - surge)
            deadline.wait(f"the supervisor stopping {surge} old replica(s) of {region}", left)
        running = set(sb.supervisor.pids(name))
        going = [i for i in old if i.pid in running][:max_unavailable]
        for info in going:
            sb.supervisor.call("signal", name=name, pid=info.pid, signum="TERM")
        batch = [i for i in old if i.pid not in running or i in going]  # stopped by the supervisor, or signalled
        pids = [i.pid for i in batch]
        drained_s = deadline.wait(f"replicas {pids} of {region} exiting", functools.partial(_all_exited, pids))
        deadline.wait(f"the replacements in {region} ready", all_ready)
        ready_s = time.monotonic() - t0
        new = [i for i in snapshot(sb, region) if i.pid not in before]
        replaced.extend(
            {
                "region": region,
                "replica": info.replica,
                "old_pid": info.pid,
                "old_version": info.version,
                "signalled_at": signalled_at,
                "drained_s": round(drained_s, 3),
                "replaced_in_s": round(ready_s, 3),
                "new": [asdict(i) for i in new],  # the batch's replacements (same for each of its entries)
            }
            for info in batch
        )
        log.info(
            "%s: replaced %s in %.1f s (drained in %.1f s)", region, [i.replica for i in batch], ready_s, drained_s
        )


def roll_out(
    sb: Rollable, version: str, *, max_unavailable: int = 1, max_surge: int = 0, timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Replace every API replica with one running ``version``; JSON-friendly facts of how it went.

    ``landed`` is true when every replica of every running region reports ``version`` on its own
    socket and each such region has all its desired replicas ready. A region that is down (lost)
    is skipped: its replicas start at the new version when it is restored. On timeout the roll
    stops where it is and reports ``landed: false`` with the reason in ``error``.
    """
    if not _VERSION.match(version):
        raise ConfigError("version", f"{version!r}: use 1-64 of letters, digits and . _ + - (starting alphanumeric)")
    if max_unavailable < 0 or max_surge < 0 or not (max_unavailable or max_surge):
        raise ConfigError("max_unavailable", f"max_unavailable {max_unavailable} and max_surge {max_surge}: both >= 0, "
                                             "one of them >= 1 (else nothing can be replaced)")  # fmt: skip
    if timeout <= 0:
        raise ConfigError("timeout", f"must be > 0, got {timeout}")
    _check_sandbox_supports_it(sb)
    started_at, t0 = _now(), time.monotonic()
    active = [r for r in sb.regions if _active(sb, r)]
    before = {r: [asdict(i) for i in snapshot(sb, r)] for r in sb.regions}
    path = api_version_file(sb.layout)
    previous = path.read_text(encoding="utf-8").strip() if path.exists() else None
    _write_version(path, version)
    log.info("rolling out %s (was %s) over %s: surge %d, unavailable %d", version, previous, active, max_surge,
             max_unavailable)  # fmt: skip
    deadline = _Deadline(timeout)
    replaced: list[dict[str, Any]] = []
    error = None
    with autoscaler.paused(sb.layout):  # its surge replicas are not load for the autoscaler to scale in
        for region in active:
            try:
                _roll_region(sb, region, version, (max_surge, max_unavailable), deadline, replaced)
            except _Timeout as err:
                error = str(err)
                log.warning("roll-out of %s stopped: %s", version, err)
                break
    after_info = {r: snapshot(sb, r) for r in sb.regions}
    desired = {r: sb.supervisor.numprocesses(f"api-{r}") if _active(sb, r) else 0 for r in sb.regions}
    landed = bool(active) and all(
        len(after_info[r]) == desired[r] and all(i.version == version for i in after_info[r]) for r in active
    )
    return {
        "version": version,
        "previous_record": previous,
        "max_unavailable": max_unavailable,
        "max_surge": max_surge,
        "started_at": started_at,
        "ended_at": _now(),
        "duration_s": round(time.monotonic() - t0, 3),
        "regions": active,
        "skipped_regions": [r for r in sb.regions if r not in active],
        "before": before,
        "after": {r: [asdict(i) for i in after_info[r]] for r in sb.regions},
        "replaced": replaced,
        "desired": desired,
        "landed": landed,
        "error": error,
        "drain_timeout_s": API_DRAIN_TIMEOUT_S,
    }
