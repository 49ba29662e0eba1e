"""The open (fixed arrival rate) model for Locust, and the shape that plays a load profile.

Locust is a closed-model tool: a user sends, waits, sends again, so when the server stalls the
users stop sending and the stall hides (coordinated omission). ``OpenModelUser`` instead runs a
schedule: request i is *intended* at a fixed time (uniform or Poisson arrivals at the profile's
rate, this process's share of it), fired on its own greenlet at that time whatever the earlier
requests are doing, and recorded with its intended time so its latency counts from then. At most
``max_in_flight`` requests are open per process; when the cap is reached the schedule waits (and
counts it), and the late requests still carry their intended time: nothing is silently dropped.

A locustfile subclasses ``OpenModelUser`` (``fire`` sends one request, passing ``context``) and
``ProfileShape`` (naming its open and closed user classes).
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any, ClassVar

import gevent
from gevent.pool import Pool
from locust import FastHttpUser, LoadTestShape, User, constant, task
from locust.exception import StopUser

from drillbit.clock import Clock
from loadtests.profiles import Profile, arrivals, load_profile
from loadtests.recorder import recorder_of

__all__ = ["OpenModelUser", "ProfileShape"]

log = logging.getLogger(__name__)


def _profile(environment: Any) -> Profile:
    opts = environment.parsed_options
    return load_profile(getattr(opts, "drill_profile", None) or "steady")


class OpenModelUser(FastHttpUser):
    """One per generator process: plays the schedule; subclasses implement ``fire``."""

    abstract = True
    wait_time = constant(0)
    workers_env = "DRILL_WORKERS"

    def fire(self, context: dict[str, Any]) -> None:
        raise NotImplementedError

    def _fire(self, intended: float, clock: Clock) -> None:
        self.fire({"intended": intended, "sent": clock.now()})

    @task
    def play(self) -> None:
        profile = _profile(self.environment)
        share = 1.0 / max(1, int(os.environ.get(self.workers_env, "1")))
        clock = Clock()
        rec = recorder_of(self.environment)
        counters: dict[str, float] = rec.schedule if rec is not None else {"scheduled": 0, "sent": 0, "capped": 0}
        pool = Pool(profile.max_in_flight)
        rng = random.Random(os.getpid())
        for intended in arrivals(profile, clock.now(), share, rng):
            counters["scheduled"] += 1
            delay = intended - clock.now()
            if delay > 0:
                gevent.sleep(delay)
            if pool.full():
                counters["capped"] += 1
                pool.wait_available()
            pool.spawn(self._fire, intended, clock)
            counters["sent"] += 1
        pool.join(timeout=profile.timeout_s + 1)
        raise StopUser


class ProfileShape(LoadTestShape):
    """Plays the profile: users per stage (closed), or one scheduling user per process (open)."""

    open_user: ClassVar[type[User] | None] = None
    closed_user: ClassVar[type[User] | None] = None

    def tick(self) -> tuple[int, float, list[type[User]] | None] | None:
        profile = _profile(self.runner.environment)  # type: ignore[union-attr]
        t = self.get_run_time()
        if profile.model == "open":
            if t >= profile.duration + profile.timeout_s + 1:
                return None  # the schedule is over and its requests have drained
            workers = max(1, int(os.environ.get(OpenModelUser.workers_env, "1")))
            return workers, workers, [self.open_user] if self.open_user else None
        stage = profile.stage_at(t)
        if stage is None:
            return None
        return (
            stage.users or 0,
            stage.spawn_rate or float(stage.users or 1),
            ([self.closed_user] if self.closed_user else None),
        )
