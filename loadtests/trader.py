"""Locustfile: a trader on the trading API (place / cancel / query), closed or open model.

    locust -f loadtests/trader.py --host http://127.0.0.1:8080 --headless --drill-profile steady

Requests are named by route template so statistics stay grouped. Symbols and prices are
realistic: a few liquid symbols, limit prices a few ticks around a mid, unique client order ids.
A profile's ``symbols: N`` spreads the traders over N symbols (the liquid ones and N - 5 more,
``S0001``...), its ``think_s: [min, max]`` sets a closed-model trader's think time.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from locust import FastHttpUser, between, task

import drillbit.load.recorder  # noqa: F401  (registers the per-request recorder)
from drillbit.load.openmodel import OpenModelUser, ProfileShape
from drillbit.load.recorder import profile_of
from drillbit.load.symbols import SYMBOLS, new_order, symbol_universe

__all__ = ["MIX", "SYMBOLS", "OpenTrader", "Trader", "TraderShape", "new_order", "symbol_universe"]


class _Trading:
    """The transaction mix, shared by the closed and the open user."""

    client: Any
    rng: random.Random
    resting: deque[int]
    symbols: dict[str, float]
    names: list[str]

    def setup_trading(self, environment: Any) -> None:
        self.rng = random.Random()
        self.resting = deque(maxlen=1000)
        self.symbols = symbol_universe(profile_of(environment).symbols)
        self.names = list(self.symbols)

    def place(self, context: dict[str, Any] | None = None) -> None:
        order = new_order(self.rng, self.symbols)
        with self.client.post("/orders", json=order, name="POST /orders", context=context or {},
                              catch_response=True) as r:  # fmt: skip
            if r.status_code in (200, 201):
                order = r.json()
                if order.get("status") in ("open", "partially_filled"):
                    self.resting.append(order["id"])
                r.success()
            else:
                r.failure(f"HTTP {r.status_code}")

    def cancel(self, context: dict[str, Any] | None = None) -> None:
        if not self.resting:
            return self.place(context)
        oid = self.resting.popleft()
        with self.client.delete(f"/orders/{oid}", name="DELETE /orders/{id}", context=context or {},
                                catch_response=True) as r:  # fmt: skip
            # 409: filled meanwhile by another trader, a normal outcome
            r.success() if r.status_code in (200, 409) else r.failure(f"HTTP {r.status_code}")
        return None

    def query(self, context: dict[str, Any] | None = None) -> None:
        if not self.resting:
            return self.book(context)
        self.client.get(f"/orders/{self.rng.choice(self.resting)}", name="GET /orders/{id}", context=context or {})
        return None

    def book(self, context: dict[str, Any] | None = None) -> None:
        self.client.get(f"/book/{self.rng.choice(self.names)}", name="GET /book/{symbol}", context=context or {})


MIX = (("place", 6), ("cancel", 2), ("query", 1), ("book", 1))


class Trader(FastHttpUser, _Trading):
    """Closed model: a trader who waits for each answer, then thinks."""

    default_think = between(0.05, 0.2)

    def wait_time(self) -> float:
        think = profile_of(self.environment).think_s
        return self.rng.uniform(*think) if think is not None else float(self.default_think())

    def on_start(self) -> None:
        self.setup_trading(self.environment)

    @task(6)
    def t_place(self) -> None:
        self.place()

    @task(2)
    def t_cancel(self) -> None:
        self.cancel()

    @task(1)
    def t_query(self) -> None:
        self.query()

    @task(1)
    def t_book(self) -> None:
        self.book()


class OpenTrader(OpenModelUser, _Trading):
    """Open model: the same mix, fired at the profile's arrival rate."""

    def on_start(self) -> None:
        self.setup_trading(self.environment)
        self._names = [n for n, _ in MIX]
        self._weights = [w for _, w in MIX]

    def fire(self, context: dict[str, Any]) -> None:
        getattr(self, self.rng.choices(self._names, self._weights)[0])(context)


class TraderShape(ProfileShape):
    open_user = OpenTrader
    closed_user = Trader
