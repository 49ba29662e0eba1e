"""Load profiles (loadtests/profiles/*.yaml): stages of users (closed model) or arrival rate (open model).

    name: steady
    model: open              # open: a fixed arrival rate, latency from the intended send time
    arrival: poisson         # uniform | poisson
    stages:
      - {duration: 60, rate: 50}          # requests per second, across all generator processes
    max_in_flight: 100       # per generator process; beyond it requests wait (and are recorded late)
    timeout_s: 5             # per request; also how long in-flight requests may drain at the end

    model: closed            # closed: N users each waiting for its answer before the next request
    stages:
      - {duration: 60, users: 20, spawn_rate: 5}

Validated at the edge: every problem at once, one line naming the file, the field and the fix.
This module never imports Locust: the engine uses it to validate a profile before starting load.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drillbit.core.errors import ConfigError
from drillbit.core.project import current as current_project
from drillbit.core.yamlio import load_model_file

__all__ = ["Profile", "Stage", "arrivals", "load_profile", "resolve_profile", "shape_at"]



class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    duration: float = Field(gt=0, le=7 * 24 * 3600, description="seconds")
    rate: float | None = Field(default=None, gt=0, le=1_000_000, description="open model: requests/s")
    users: int | None = Field(default=None, ge=0, le=100_000, description="closed model: concurrent users")
    spawn_rate: float | None = Field(default=None, gt=0, le=100_000, description="closed model: users started/s")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    model: Literal["open", "closed"]
    arrival: Literal["uniform", "poisson"] = "uniform"
    stages: list[Stage] = Field(min_length=1)
    max_in_flight: int = Field(default=100, ge=1, le=100_000)
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    # how many symbols the traders spread over (None: the locustfile's few liquid ones); seed 003: 500, then 1,800+
    symbols: int | None = Field(default=None, ge=1, le=100_000)
    # closed model: each user's think time between answers, seconds [min, max] (None: the locustfile's)
    think_s: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _stages_fit_the_model(self) -> Profile:
        problems = []
        for i, s in enumerate(self.stages):
            if self.model == "open" and (s.rate is None or s.users is not None or s.spawn_rate is not None):
                problems.append(f"stages[{i}]: an open-model stage takes rate (requests/s), not users or spawn_rate")
            if self.model == "closed" and (s.users is None or s.rate is not None):
                problems.append(f"stages[{i}]: a closed-model stage takes users (and spawn_rate), not rate")
        if self.think_s is not None and not 0 <= self.think_s[0] <= self.think_s[1] <= 3600:
            problems.append("think_s: [min, max] seconds with 0 <= min <= max <= 3600")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.stages)

    def stage_at(self, t: float) -> Stage | None:
        """The stage running ``t`` seconds into the test (None once the profile is over)."""
        elapsed = 0.0
        for s in self.stages:
            elapsed += s.duration
            if t < elapsed:
                return s
        return None

    def scheduled(self, until: float | None = None) -> float:
        """Requests the open model schedules in its first ``until`` seconds (all of them by default)."""
        left = self.duration if until is None else max(0.0, until)
        total = 0.0
        for s in self.stages:
            span = min(s.duration, left)
            total += (s.rate or 0.0) * span
            left -= span
        return total


def resolve_profile(name_or_path: str | Path) -> Path:
    """A profile name (steady, spike, ...) or a path to a profile file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return current_project().find("loadtests", "profiles", f"{name_or_path}.yaml")


def load_profile(name_or_path: str | Path) -> Profile:
    """Read and validate a profile; raises ConfigError naming the file and every problem in it."""
    known = ", ".join(current_project().names("loadtests/profiles", ".yaml"))
    if not str(name_or_path).strip():
        raise ConfigError("profile", f"empty name: use one of {known} or a path to a profile file")
    path = resolve_profile(name_or_path)
    return load_model_file(path, Profile, missing=f"no such profile: use one of {known} or a path to a profile file",
                           shape="name:, model:, stages:")  # fmt: skip


def arrivals(profile: Profile, t0: float, share: float, rng: random.Random) -> Iterator[float]:
    """Intended send times (epoch s) of this process's ``share`` of an open-model profile started at ``t0``.

    Uniform: request k of a stage is intended at stage start + k / rate. Poisson: exponential gaps
    at the stage's rate (the schedule is drawn up front, never stretched by how the server answers).
    """
    stage_start = t0
    for stage in profile.stages:
        rate = (stage.rate or 0.0) * share
        end = stage_start + stage.duration
        if rate > 0:
            if profile.arrival == "uniform":
                for k in range(math.ceil(stage.duration * rate - 1e-9)):
                    yield stage_start + k / rate
            else:
                t = stage_start + rng.expovariate(rate)
                while t < end:
                    yield t
                    t += rng.expovariate(rate)
        stage_start = end


def shape_at(profile: Profile, t: float, workers: int = 1, live_users: int | None = None) -> tuple[int, float] | None:
    """What the Locust shape asks for ``t`` seconds into the test: (users, spawn rate), or None to stop.

    Closed model: the stage's users and spawn rate. Open model: one scheduling user per generator
    process for the whole profile (the rate lives in the schedule, not in the user count); the
    test ends once the schedule is over and every scheduling user has drained and finished
    (``live_users == 0``), or at the latest ``timeout_s + 1`` seconds after the schedule.
    """
    if profile.model == "open":
        if t >= profile.duration and (live_users == 0 or t >= profile.duration + profile.timeout_s + 1):
            return None
        return workers, float(max(workers, 100))  # every scheduler at once: the rate lives in the schedule
    stage = profile.stage_at(t)
    if stage is None:
        return None
    users = stage.users or 0
    return users, stage.spawn_rate or float(max(users, 1))
