"""Locustfile: a market-data reader (order book and top of book), closed or open model."""

from __future__ import annotations

import random
from typing import Any

from locust import FastHttpUser, between, task
from trader import SYMBOLS

import drillbit.load.recorder  # noqa: F401  (registers the per-request recorder)
from drillbit.load.openmodel import OpenModelUser, ProfileShape

__all__ = ["MarketDataReader", "MarketDataShape", "OpenMarketDataReader"]


class _Reading:
    client: Any

    def read(self, context: dict[str, Any] | None = None) -> None:
        symbol = random.choice(list(SYMBOLS))
        if random.random() < 0.5:
            self.client.get(f"/book/{symbol}?depth=10", name="GET /book/{symbol}", context=context or {})
        else:
            self.client.get(f"/marketdata/{symbol}", name="GET /marketdata/{symbol}", context=context or {})


class MarketDataReader(FastHttpUser, _Reading):
    wait_time = between(0.05, 0.2)

    @task
    def t_read(self) -> None:
        self.read()


class OpenMarketDataReader(OpenModelUser, _Reading):
    def fire(self, context: dict[str, Any]) -> None:
        self.read(context)


class MarketDataShape(ProfileShape):
    open_user = OpenMarketDataReader
    closed_user = MarketDataReader
