"""The open (fixed arrival rate) model for Locust, and the shape that plays a load profile.

Locust is a closed-model tool: a user sends, waits, sends again, so when the server stalls the
users stop sending and the stall hides (coordinated omission). ``OpenModelUser`` instead plays a
schedule: request i is *intended* at a fixed time (uniform or Poisson arrivals at this process's
share of the profile's rate) and fired on its own greenlet at that time, whatever the earlier
requests are doing; its latency counts from the intended time. At most ``max_in_flight``
requests are open per process (the HTTP client's connection pool is sized to match); when the
cap is reached the schedule waits, and the late requests still carry their intended time.
Nothing is dropped silently: when the test stops, requests that were due but not sent are
recorded as ``not_sent`` and requests still in flight as ``abandoned``.

Generator lateness (a request leaving late because the generator itself was busy) is tracked
apart from waits for the cap (the server's doing), so saturation can be told from slowness.

A locustfile subclasses ``OpenModelUser`` (``fire`` sends one request, passing ``context`` to the
client) and ``ProfileShape`` (naming its open and closed user classes).
"""

from __future__ import annotations

import logging
import random
from typing import Any, ClassVar

import gevent
from gevent.event import Event
from gevent.pool import Pool
from locust import FastHttpUser, LoadTestShape, User, constant, events, task
from locust.env import Environment
from locust.exception import StopUser

from drillbit.core.clock import Clock
from drillbit.load.profiles import Profile, arrivals, shape_at
from drillbit.load.recorder import Recorder, profile_of, recorder_of, workers_of
from drillbit.load.recording import ScheduleStats

__all__ = ["OpenModelUser", "ProfileShape"]

log = logging.getLogger(__name__)


def _stopping_event(environment: Any) -> Event:
    """Set when the test starts stopping (Locust's documented ``test_stopping`` hook)."""
    ev: Event | None = getattr(environment, "drill_stopping", None)
    if ev is None:
        ev = Event()
        environment.drill_stopping = ev
        environment.events.test_stopping.add_listener(lambda **_: ev.set())
        environment.events.test_start.add_listener(lambda **_: ev.clear())
    return ev


class OpenModelUser(FastHttpUser):
    """One per generator process: plays the schedule; subclasses implement ``fire``."""

    abstract = True
    wait_time = constant(0)

    def __init__(self, environment: Any) -> None:
        profile = profile_of(environment)
        # one connection per in-flight request, and the profile's timeout on every request
        self.concurrency = profile.max_in_flight
        self.network_timeout = self.connection_timeout = profile.timeout_s
        super().__init__(environment)
        self._stopping = _stopping_event(environment)

    def fire(self, context: dict[str, Any]) -> None:
        """Send one request, passing ``context`` to the client call (it carries the intended time)."""
        raise NotImplementedError

    def _fire(self, intended: float, cap_debt: float, clock: Clock, stats: ScheduleStats, rec: Recorder | None) -> None:
        sent = clock.now()
        # late for the generator's own reasons: behind schedule, less the time spent waiting for the cap
        stats.add_lateness(max(0.0, sent - intended - cap_debt))
        try:
            self.fire({"intended": intended, "sent": sent})
        except gevent.GreenletExit:
            if rec is not None:
                rec.abandoned(intended, sent)
            raise

    @task
    def play(self) -> None:
        env = self.environment
        profile = profile_of(env)
        workers = workers_of(env)
        clock = Clock.from_env()  # the run's anchor (DRILL_CLOCK), never its own
        rec = recorder_of(env)
        stats = rec.schedule if rec is not None else ScheduleStats()
        stats.share = 1.0 / workers
        pool = Pool(profile.max_in_flight)
        stats.t0 = clock.now()
        schedule = arrivals(profile, stats.t0, stats.share, random.Random())
        cap_debt = 0.0  # time spent waiting for the cap since the schedule was last on time
        pending: float | None = None
        try:
            for intended in schedule:
                pending = intended
                delay = intended - clock.now()
                if delay > 0:
                    cap_debt = 0.0
                    if self._stopping.wait(delay):
                        break
                elif self._stopping.is_set():
                    break
                if pool.full():
                    stats.capped += 1
                    waited_from = clock.now()
                    while pool.full() and not self._stopping.is_set():
                        pool.wait_available(timeout=0.1)
                    waited = clock.now() - waited_from
                    cap_debt += waited
                    stats.cap_wait_s += waited
                    if pool.full():
                        break  # stopping while the server holds every slot
                pool.spawn(self._fire, intended, cap_debt, clock, stats, rec)
                stats.sent += 1
                pending = None
            else:
                stats.t_end = stats.t0 + profile.duration  # the whole schedule went out
            if stats.t_end is None:
                stats.t_end = clock.now()  # stopped early: what was due by now counts
            pool.join(timeout=profile.timeout_s + 0.5)  # let what is in flight answer
        finally:
            self._wind_up(clock, pool, schedule, pending, stats, rec)
        raise StopUser

    @staticmethod
    def _wind_up(clock: Clock, pool: Pool, schedule: Any, pending: float | None, stats: ScheduleStats,
                 rec: Recorder | None) -> None:  # fmt: skip
        """Account for every request that was due but not sent, and abandon what is still in flight."""
        if stats.t_end is None:  # killed outright
            stats.t_end = clock.now()
        cutoff = stats.t_end
        due = [pending] if pending is not None and pending <= cutoff else []
        if pending is None or pending <= cutoff:
            for intended in schedule:  # the rest of the schedule that fell due before the stop
                if intended > cutoff:
                    break
                due.append(intended)
        for intended in due:
            if rec is not None:
                rec.not_sent(intended)
            else:
                stats.not_sent += 1
        if due:
            log.warning("%d requests were due but not sent when the test stopped", len(due))
        if len(pool):
            log.warning("abandoning %d requests still in flight", len(pool))
        pool.kill(block=True, timeout=2)


class ProfileShape(LoadTestShape):
    """Plays the profile: users per stage (closed), or one scheduling user per process (open)."""

    abstract: ClassVar[bool] = True  # only its subclasses are shapes Locust may pick (they default to False)
    open_user: ClassVar[type[User] | None] = None
    closed_user: ClassVar[type[User] | None] = None

    def user_for(self, profile: Profile) -> type[User] | None:
        return self.open_user if profile.model == "open" else self.closed_user

    def tick(self) -> tuple[int, float] | None:
        runner = self.runner
        if runner is None:
            return None
        env = runner.environment
        return shape_at(profile_of(env), self.get_run_time(), workers_of(env), runner.user_count)


@events.init.add_listener
def _only_the_profiles_users(environment: Environment, **_: Any) -> None:
    """Keep only the user class of the profile's model (open or closed), on the master and every worker alike.

    Otherwise Locust spreads the shape's users over every User class in the locustfile (an open
    profile on two processes would run one scheduler and one closed-model user). Done in place, the
    way Locust itself drops classes of weight 0.
    """
    shape = environment.shape_class
    if not isinstance(shape, ProfileShape) or environment.parsed_options is None:
        return
    profile = profile_of(environment)
    user = shape.user_for(profile)
    if user is None:
        raise ValueError(f"{type(shape).__name__} names no user class for the {profile.model} model")
    environment.user_classes[:] = [user]
