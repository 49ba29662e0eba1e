"""The traders' symbols and orders (no Locust here: importable by the engine and by tests).

A few liquid symbols with realistic mids by default; a profile's ``symbols: N`` spreads the traders
over N (the liquid ones, then ``S0001``... at deterministic mids). Limit prices a few ticks around a
mid, unique client order ids.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

__all__ = ["SYMBOLS", "TICK", "new_order", "symbol_universe"]

SYMBOLS = {"AAPL": 190.0, "MSFT": 415.0, "NVDA": 120.0, "BTC-USD": 64000.0, "ES.F": 5300.0}
TICK = 0.01


def symbol_universe(count: int | None) -> dict[str, float]:
    """``count`` symbols with their mid prices: the liquid ones first, then ``S0001``... (None: the liquid ones)."""
    if count is None:
        return dict(SYMBOLS)
    more = {f"S{i:04d}": round(10.0 + (i * 37) % 990, 2) for i in range(1, max(0, count - len(SYMBOLS)) + 1)}
    return dict(list({**SYMBOLS, **more}.items())[:count])


def new_order(rng: random.Random, symbols: dict[str, float] | None = None) -> dict[str, Any]:
    universe = symbols or SYMBOLS
    symbol = rng.choice(list(universe))
    mid = universe[symbol]
    side = rng.choice(("buy", "sell"))
    offset = rng.randint(-5, 5) * TICK * max(1.0, mid / 1000)
    return {"symbol": symbol, "side": side, "price": f"{mid + offset:.2f}", "qty": rng.randint(1, 50),
            "client_order_id": uuid.uuid4().hex}  # fmt: skip
