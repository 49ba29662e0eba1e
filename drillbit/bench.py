"""Capacity search (``drill bench``): the highest open-model rate at which the SLAs still hold.

The steps are the profile's stages, in order (an open-model profile: each stage a rate held for
its duration; ``loadtests/profiles/step.yaml``). Each step is a load run of its own (its own
Locust process, its records in ``<run dir>/steps/<k>/``), so the search stops at the first step
that breaks an SLA, or at which the generator saturates, without loading the target any further;
it says which of the two happened (a saturated generator measures itself, not the target).

A step's first ``warmup`` share is left out (connections opening, queues settling); the rest is
judged against the latency and error SLAs of the SLA file (its ``bench`` experiment entry, else
its default set), each on its request name or on every request. A step whose p95 over the last
third of its window is more than ``STABLE_RATIO`` times its p95 over the first third has not
settled (latency still climbing: a queue growing): it does not hold, whatever its p95 so far.

A step that does not hold is run once more before it counts (a second, fresh run: a moment's
hiccup of this machine or the target is not the capacity; a real limit breaks twice); both runs
are kept.

The knee is the rate of the last step that held; the first step that did not is its upper bound,
so the truth lies within one step (``bound_rps``). Per request name, the knee is the last step
(up to where the search stopped) at which that name's p95 held the p95 SLA's target.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from drillbit.core.clock import Clock
from drillbit.core.errors import ConfigError
from drillbit.core.rundir import REQUESTS_DIR, request_parts
from drillbit.core.safeio import write_text
from drillbit.load.profiles import Profile, load_profile
from drillbit.load.runner import run_load
from drillbit.probes.latency import PHASE_ALL, analyze_latency, load_requests
from drillbit.sla import Sla

__all__ = ["BENCH", "BenchResult", "StepResult", "judge_step", "knee_of", "run_bench", "steps_of"]

log = logging.getLogger(__name__)

#: bench.json: the capacity search's result, in its run directory
BENCH = "bench.json"
#: the SLA metrics a capacity search judges (the load's own figures)
BENCH_METRICS = ("p50_ms", "p95_ms", "p99_ms", "error_rate_percent")
WARMUP = 0.2
STABLE_RATIO = 1.5
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
}  # fmt: skip


@dataclass
class StepResult:
    """One step: what was asked and achieved, its figures, and whether it held."""

    index: int
    rate: float  # asked, requests/s
    hold_s: float
    attempt: int = 1  # 2: the step's second run, after its first did not hold
    achieved_rps: float = 0.0
    saturated: bool = False
    saturation: str | None = None
    figures: dict[str, dict[str, float | None]] = field(default_factory=dict)  # request name ("all") -> metric -> value
    p95_first_ms: float | None = None  # p95 over the first and the last third of the judged window
    p95_last_ms: float | None = None
    breaches: list[str] = field(default_factory=list)  # an SLA broken, or latency still climbing
    held: bool = False


@dataclass
class BenchResult:
    profile: str
    target: str
    slas: dict[str, dict[str, Any]]
    steps: list[StepResult]
    stopped_because: str  # "sla" | "saturated" | "end of profile"
    knee_rps: float | None  # the last step that held (None: not even the first)
    knee_upper_rps: float | None  # the first that did not (None: every step held: the knee is at least knee_rps)
    bound_rps: float | None  # the knee's error bound: the step size there
    knees_by_request: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps_of(profile: Profile) -> list[tuple[float, float]]:
    """(rate, hold_s) per step: an open-model profile's stages, rising."""
    if profile.model != "open":
        raise ConfigError("--profile", f"profile {profile.name!r} is a closed model: a capacity search raises an "
                                       "open-model rate (model: open, a rate per stage)")  # fmt: skip
    steps = [(float(s.rate or 0.0), float(s.duration)) for s in profile.stages]
    if any(b[0] <= a[0] for a, b in itertools.pairwise(steps)):
        raise ConfigError("--profile", f"profile {profile.name!r}: each stage's rate must be above the one before")
    return steps


def _figures(stats: Any) -> dict[str, float | None]:
    return {m: getattr(stats, m) for m in BENCH_METRICS} | {"achieved_rps": stats.achieved_rps,
                                                           "count": float(stats.count)}  # fmt: skip


def judge_step(step: StepResult, slas: dict[str, Sla]) -> StepResult:
    """Mark the step held or not: every SLA within its target, latency settled, the generator not saturated."""
    breaches = []
    for key, sla in slas.items():
        value = step.figures.get(sla.request or PHASE_ALL, {}).get(sla.metric)
        where = f" ({sla.request})" if sla.request else ""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            breaches.append(f"{key}{where}: not measured")
        elif not _OPS[sla.op](value, sla.target):
            breaches.append(f"{key}{where}: {value:.4g} {sla.unit}, target {sla.op} {sla.target:g}")
    if step.p95_first_ms and step.p95_last_ms and step.p95_last_ms > STABLE_RATIO * step.p95_first_ms:
        breaches.append(f"latency still climbing: p95 {step.p95_first_ms:.1f} -> {step.p95_last_ms:.1f} ms across "
                        "the step (a queue growing)")  # fmt: skip
    step.breaches = breaches
    step.held = not breaches and not step.saturated
    return step


def knee_of(steps: list[StepResult], p95_target: float | None) -> tuple[float | None, float | None,
                                                                        dict[str, float | None]]:  # fmt: skip
    """(knee, upper bound, knee per request name) from the judged steps, in order (a step run twice: its
    second run counts)."""
    steps = sorted({s.index: s for s in steps}.values(), key=lambda s: s.index)
    knee = upper = None
    for s in steps:
        if s.held:
            knee = s.rate
        else:
            upper = s.rate
            break
    names = sorted({n for s in steps for n in s.figures if n != PHASE_ALL})
    by_name: dict[str, float | None] = {}
    for name in names:
        by_name[name] = None
        for s in steps:
            p95 = s.figures.get(name, {}).get("p95_ms")
            if s.saturated or p95 is None or p95_target is None or not p95 < p95_target:
                break
            by_name[name] = s.rate
    return knee, upper, by_name


def _step_profile(profile: Profile, rate: float, hold_s: float, path: Path) -> Path:
    data = {"name": f"{profile.name}-{rate:g}", "model": "open", "arrival": profile.arrival,
            "stages": [{"duration": hold_s, "rate": rate}], "max_in_flight": profile.max_in_flight,
            "timeout_s": profile.timeout_s}  # fmt: skip
    return write_text(path, yaml.safe_dump(data, sort_keys=False))


def _measure(step: StepResult, step_dir: Path, names: set[str], warmup: float) -> None:
    requests = load_requests(step_dir)
    lo = float(min(requests.key())) if len(requests) else 0.0
    hi = lo + step.hold_s
    start = lo + warmup * step.hold_s
    third = (hi - start) / 3
    windows = {"judged": (start, hi), "first": (start, start + third), "last": (hi - third, hi)}
    stats = analyze_latency(requests, windows)
    step.figures = {PHASE_ALL: _figures(stats["judged"])}
    step.p95_first_ms, step.p95_last_ms = stats["first"].p95_ms, stats["last"].p95_ms
    step.achieved_rps = stats["judged"].achieved_rps
    for name in sorted(names):
        try:
            step.figures[name] = _figures(analyze_latency(load_requests(step_dir, name), windows)["judged"])
        except ValueError as err:  # the load never made this request: its SLA is then unmeasured
            log.info("no %s in step %d: %s", name, step.index, err)


def run_bench(profile_name: str, host: str, out: Path, slas: dict[str, Sla], *, locustfile: str = "trader",
              processes: int = 1, warmup: float = WARMUP, target: str = "", clock: Clock | None = None,
              say: Callable[[str], None] = print) -> BenchResult:  # fmt: skip
    """Run the steps against ``host`` into run directory ``out``; stop at the first that does not hold."""
    profile = load_profile(profile_name)
    steps = steps_of(profile)
    judged = {k: s for k, s in slas.items() if s.metric in BENCH_METRICS}
    if not judged:
        raise ConfigError("--sla", f"no latency or error SLA to judge the steps by (metrics "
                                   f"{', '.join(BENCH_METRICS)})")  # fmt: skip
    names = {s.request for s in judged.values() if s.request}
    results: list[StepResult] = []
    stopped = "end of profile"
    run = _StepRunner(profile, host, out, judged, names, locustfile=locustfile, processes=processes, warmup=warmup,
                      clock=clock or Clock(), say=say)  # fmt: skip
    for i, (rate, hold) in enumerate(steps):
        step = run(i, rate, hold, 1)
        if not step.held:  # once more: a hiccup is not the capacity
            results.append(step)
            step = run(i, rate, hold, 2)
        results.append(step)
        if not step.held:
            stopped = "saturated" if step.saturated else "sla"
            break
    p95_sla = next((s for s in judged.values() if s.metric == "p95_ms" and not s.request), None)
    knee, upper, by_name = knee_of(results, p95_sla.target if p95_sla else None)
    bound = (upper - knee) if knee is not None and upper is not None else None
    if knee is not None and upper is None and len(steps) > 1:
        bound = steps[-1][0] - steps[-2][0]
    result = BenchResult(profile=profile.name, target=target or host,
                         slas={k: s.model_dump() for k, s in judged.items()}, steps=results, stopped_because=stopped,
                         knee_rps=knee, knee_upper_rps=upper, bound_rps=bound, knees_by_request=by_name)  # fmt: skip
    write_text(out / BENCH, json.dumps(result.to_dict(), indent=2))
    return result


@dataclass
class _StepRunner:
    """Runs one step's load into its own directory and judges it."""

    profile: Profile
    host: str
    out: Path
    slas: dict[str, Sla]
    names: set[str]
    locustfile: str
    processes: int
    warmup: float
    clock: Clock
    say: Callable[[str], None]

    def __call__(self, i: int, rate: float, hold: float, attempt: int) -> StepResult:
        step_dir = self.out / "steps" / (f"{i:02d}-{rate:g}rps" + ("" if attempt == 1 else f"-run{attempt}"))
        step_dir.mkdir(parents=True, exist_ok=True)
        step = StepResult(index=i, rate=rate, hold_s=hold, attempt=attempt)
        load = run_load(self.locustfile, _step_profile(self.profile, rate, hold, step_dir / "profile.yaml"), self.host,
                        step_dir, processes=self.processes, clock=self.clock)  # fmt: skip
        step.saturated, step.saturation = load.saturated, load.reason
        if (step_dir / REQUESTS_DIR).exists():
            _measure(step, step_dir, self.names | _request_names(step_dir), self.warmup)
        judge_step(step, self.slas)
        p95 = step.figures.get(PHASE_ALL, {}).get("p95_ms")
        verdict = "held" if step.held else "saturated generator" if step.saturated else "broke"
        why = "" if step.held else ": " + "; ".join(step.breaches or [step.saturation or ""])
        again = " (second run)" if attempt > 1 else ""
        self.say(f"step {i}{again}: {rate:g} req/s asked, {step.achieved_rps:.0f} sent, p95 "
                 f"{'-' if p95 is None else f'{p95:.1f} ms'}: {verdict}{why}")  # fmt: skip
        return step


def _request_names(step_dir: Path) -> set[str]:
    """Every request name the step's load made (each gets its own knee)."""
    names: set[str] = set()
    for f in request_parts(step_dir)[0]:
        names |= {str(n) for n in pq.read_table(f, columns=["name"]).column("name").unique().to_pylist()}
    return names
