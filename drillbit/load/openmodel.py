"""The open (fixed arrival rate) model for Locust, and the shape that plays a load profile.

Locust is a closed-model tool: a user sends, waits, sends again, so when the server stalls the
users stop sending and the stall hides (coordinated omission). ``OpenModelUser`` instead plays a
schedule: request i is *intended* at a fixed time (uniform or Poisson arrivals at this process's
share of the profile's rate) and sent at that time, whatever the earlier requests are doing; its
latency counts from the intended time. At most ``max_in_flight`` requests are open per process
(the HTTP client's connection pool is sized to match); when the cap is reached the schedule
waits, and the late requests still carry their intended time. Nothing is dropped silently: when
the test stops, requests that were due but not sent are recorded as ``not_sent`` and requests
still in flight as ``abandoned``.

The requests go out from long-lived *sender* greenlets (``Senders``), never more than
``max_in_flight`` of them: each takes the next intended time from the shared schedule, sleeps
until it, sends, and takes the next once answered. A sender is added only when one is about to
send and none is left waiting for the times after it, so a stall grows the set (up to the cap)
exactly as far as the requests it holds open. Nothing is spawned per request: a greenlet spawned
into a pool per request cost a fifth of the generator's CPU (131 vs 105 us a request against
nginx on one pinned core), holding one process's open-model rate well below its closed loop's.

Generator lateness (a request leaving late because the generator itself was busy) is tracked
apart from waits for the cap (the server's doing), so saturation can be told from slowness: a
request that was due while every sender was in flight and the cap reached waited for the cap
from when it was due (or the cap filled, if later) until a sender came back for it; those waits
add up (``cap_debt``) until the schedule is next on time, and only the lateness beyond them counts
as the generator's.

A locustfile subclasses ``OpenModelUser`` (``fire`` sends one request, passing ``context`` to the
client) and ``ProfileShape`` (naming its open and closed user classes).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import gevent
from gevent import Greenlet
from gevent.event import Event
from locust import FastHttpUser, LoadTestShape, User, constant, events, task
from locust.env import Environment
from locust.exception import StopUser

from drillbit.core.clock import Clock
from drillbit.load.profiles import Profile, arrivals, shape_at
from drillbit.load.recorder import Recorder, profile_of, recorder_of, workers_of
from drillbit.load.recording import ScheduleStats

__all__ = ["OpenModelUser", "ProfileShape", "Senders"]

log = logging.getLogger(__name__)

#: how long stopped senders have to die once killed (they are asleep or in flight: they die at once)
KILL_TIMEOUT_S = 2.0


def _stopping_event(environment: Any) -> Event:
    """Set when the test starts stopping (Locust's documented ``test_stopping`` hook)."""
    ev: Event | None = getattr(environment, "drill_stopping", None)
    if ev is None:
        ev = Event()
        environment.drill_stopping = ev
        environment.events.test_stopping.add_listener(lambda **_: ev.set())
        environment.events.test_start.add_listener(lambda **_: ev.clear())
    return ev


class _Sender:
    """One sender greenlet (started on the hub's next turn), the intended time it holds while asleep
    until it (None otherwise), and whether it is sending (a request in flight)."""

    __slots__ = ("flying", "greenlet", "held")

    def __init__(self, run: Callable[[_Sender], None]) -> None:
        self.held: float | None = None
        self.flying = False
        self.greenlet: Greenlet = gevent.spawn(run, self)


#: sends one request: (intended time, cap debt at the time it was taken from the schedule)
Send = Callable[[float, float], None]


class Senders:
    """Up to ``cap`` long-lived greenlets sending one schedule's requests at their intended times.

    The schedule is a cursor shared by the senders: each takes the next intended time in turn
    (``_take``), so times leave in order and none is taken twice. A sender about to send while no
    other waits for the times after it adds one, up to ``cap``; at the cap, the schedule waits
    for a sender to come back (``capped``, ``cap_wait_s`` and the cap debt in ``stats``).
    ``all_out`` is set once the whole schedule has been sent; ``stop`` ends it early.
    """

    def __init__(self, schedule: Iterator[float], cap: int, clock: Clock, stats: ScheduleStats, send: Send) -> None:
        if cap < 1:
            raise ValueError(f"cap: at least one sender, got {cap}")
        self._next = schedule.__next__
        self._schedule = schedule
        self._now = clock.now
        self._stats = stats
        self._send = send
        self.cap = cap
        self.members: list[_Sender] = []
        self.all_out = Event()
        self._asleep = 0  # senders holding a time they sleep until
        self._starting = 0  # senders spawned that have not yet taken their first time
        self._closed = False  # stopped, or the schedule is exhausted: nothing more is taken
        self._exhausted = False
        self._cap_debt = 0.0  # cap waits since the schedule was last on time
        self._full_since: float | None = None  # every sender in flight at the cap, nobody holding the next time

    def start(self) -> None:
        self._add()

    def _add(self) -> None:
        self._starting += 1
        self.members.append(_Sender(self._run))

    def _take(self) -> tuple[float, float] | None:
        """The next intended time and the cap debt it carries; None once stopped or exhausted."""
        if self._closed:
            return None
        try:
            intended = self._next()
        except StopIteration:
            self._closed = self._exhausted = True
            if not self._asleep:
                self.all_out.set()
            return None
        now = self._now()
        full_since, self._full_since = self._full_since, None
        if intended > now:
            self._cap_debt = 0.0  # on time again: nothing owed to the cap
            return intended, 0.0
        if full_since is not None:
            waited = now - max(intended, full_since)
            if waited > 0:
                self._cap_debt += waited
                self._stats.capped += 1
                self._stats.cap_wait_s += waited
        return intended, self._cap_debt

    def _sending(self) -> None:
        """A sender is about to send: make sure someone takes the next time, or note that the cap is full."""
        if self._asleep or self._starting or self._closed:
            if self._exhausted and not self._asleep:
                self.all_out.set()
            return
        if len(self.members) < self.cap:
            self._add()
        else:
            self._full_since = self._now()

    def _run(self, me: _Sender) -> None:
        take, now, send = self._take, self._now, self._send
        self._starting -= 1
        while (slot := take()) is not None:
            intended, debt = slot
            delay = intended - now()
            if delay > 0:
                me.held = intended
                self._asleep += 1
                try:
                    while delay > 0:  # a timer may wake a hair early: never send before the intended time
                        gevent.sleep(delay)
                        delay = intended - now()
                finally:
                    self._asleep -= 1
                me.held = None
            self._sending()
            me.flying = True
            send(intended, debt)
            me.flying = False

    def stop(self) -> None:
        """Take nothing more; senders asleep on a time are killed (their times stay in ``held``)."""
        self._closed = True
        gevent.killall([s.greenlet for s in self.members if s.held is not None], block=True, timeout=KILL_TIMEOUT_S)

    def _alive(self) -> list[Greenlet]:
        return [s.greenlet for s in self.members if not s.greenlet.dead]

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the senders to finish (after ``stop`` or ``all_out``)."""
        gevent.joinall(self._alive(), timeout=timeout)

    def kill(self) -> int:
        """Kill every sender left (stopping first); returns how many had a request in flight."""
        self.stop()
        flying = sum(1 for s in self.members if s.flying and not s.greenlet.dead)
        gevent.killall(self._alive(), block=True, timeout=KILL_TIMEOUT_S)
        return flying

    def unsent(self, cutoff: float) -> list[float]:
        """Intended times due by ``cutoff`` that never left: held by a stopped sender, or not yet taken."""
        due = sorted(s.held for s in self.members if s.held is not None and s.held <= cutoff)
        for intended in self._schedule:
            if intended > cutoff:
                break
            due.append(intended)
        return due


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

    def _sender(self, clock: Clock, stats: ScheduleStats, rec: Recorder | None) -> Send:
        """One request at its intended time: generator lateness, then ``fire``; abandoned if killed in flight."""
        now, fire, events_ = clock.now, self.fire, self.environment.events

        def send(intended: float, cap_debt: float) -> None:
            sent = now()
            stats.sent += 1
            # late for the generator's own reasons: behind schedule, less the time spent waiting for the cap
            stats.add_lateness(max(0.0, sent - intended - cap_debt))
            try:
                fire({"intended": intended, "sent": sent})
            except gevent.GreenletExit:
                if rec is not None:
                    rec.abandoned(intended, sent)
                raise
            except Exception as err:  # the locustfile's bug: reported as Locust reports a task's, the sender lives on
                events_.user_error.fire(user_instance=self, exception=err, tb=err.__traceback__)
                log.error("fire raised: %s", err, exc_info=True)

        return send

    @task
    def play(self) -> None:
        env = self.environment
        profile = profile_of(env)
        clock = Clock.from_env()  # the run's anchor (DRILL_CLOCK), never its own
        rec = recorder_of(env)
        stats = rec.schedule if rec is not None else ScheduleStats()
        stats.share = 1.0 / workers_of(env)
        stats.t0 = clock.now()
        schedule = arrivals(profile, stats.t0, stats.share, random.Random())
        senders = Senders(schedule, profile.max_in_flight, clock, stats, self._sender(clock, stats, rec))
        try:
            senders.start()
            gevent.wait([self._stopping, senders.all_out], count=1)
            if senders.all_out.is_set():
                stats.t_end = stats.t0 + profile.duration  # the whole schedule went out
            else:
                stats.t_end = clock.now()  # stopped early: what was due by now counts
                senders.stop()
            senders.join(profile.timeout_s + 0.5)  # let what is in flight answer
        finally:
            self._wind_up(clock, senders, stats, rec)
        raise StopUser

    @staticmethod
    def _wind_up(clock: Clock, senders: Senders, stats: ScheduleStats, rec: Recorder | None) -> None:
        """Account for every request that was due but not sent, and abandon what is still in flight."""
        if stats.t_end is None:  # killed outright
            stats.t_end = clock.now()
        abandoned = senders.kill()
        due = senders.unsent(stats.t_end)
        for intended in due:
            if rec is not None:
                rec.not_sent(intended)
            else:
                stats.not_sent += 1
        if due:
            log.warning("%d requests were due but not sent when the test stopped", len(due))
        if abandoned:
            log.warning("abandoned %d requests still in flight", abandoned)


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
