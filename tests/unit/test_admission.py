"""Symbol queues of the trading API's admission (drillbit.sut.admission): per symbol, one at a time, in order."""

from __future__ import annotations

import asyncio

from drillbit.sut.admission import SymbolQueues


async def _enter(queues: SymbolQueues, symbol: str, log: list[str], name: str, hold: asyncio.Event) -> None:
    async with queues.hold(symbol):
        log.append(f"{name} in")
        await hold.wait()
        log.append(f"{name} out")


def test_one_symbols_writes_run_one_at_a_time_in_arrival_order() -> None:
    async def scenario() -> list[str]:
        queues, log, release = SymbolQueues(), [], asyncio.Event()
        tasks = [asyncio.create_task(_enter(queues, "HOT", log, n, release)) for n in "abc"]
        await asyncio.sleep(0.01)
        assert log == ["a in"] and queues.waiting.now == 2
        release.set()
        await asyncio.gather(*tasks)
        return log

    assert asyncio.run(scenario()) == ["a in", "a out", "b in", "b out", "c in", "c out"]


def test_other_symbols_never_wait_for_a_busy_one() -> None:
    async def scenario() -> list[str]:
        queues, log, stuck, free = SymbolQueues(), [], asyncio.Event(), asyncio.Event()
        busy = asyncio.create_task(_enter(queues, "HOT", log, "hot", stuck))
        free.set()
        await asyncio.wait_for(_enter(queues, "COLD", log, "cold", free), timeout=1)
        stuck.set()
        await busy
        return log

    assert asyncio.run(scenario()) == ["hot in", "cold in", "cold out", "hot out"]


def test_a_symbols_queue_is_gone_once_nothing_holds_or_waits_and_the_peak_is_kept() -> None:
    async def scenario() -> tuple[int, int, int]:
        queues, release = SymbolQueues(), asyncio.Event()
        tasks = [asyncio.create_task(_enter(queues, f"S{i % 3}", [], str(i), release)) for i in range(9)]
        await asyncio.sleep(0.01)
        during = len(queues)
        release.set()
        await asyncio.gather(*tasks)
        return during, len(queues), queues.waiting.peak

    assert asyncio.run(scenario()) == (3, 0, 6)


def test_a_waiter_cancelled_by_its_deadline_leaves_the_queue_consistent() -> None:
    async def scenario() -> int:
        queues, release, log = SymbolQueues(), asyncio.Event(), []
        holder = asyncio.create_task(_enter(queues, "HOT", log, "holder", release))
        await asyncio.sleep(0.01)
        try:
            async with asyncio.timeout(0.05):
                await _enter(queues, "HOT", log, "late", release)
        except TimeoutError:
            log.append("late shed")
        release.set()
        await holder
        await _enter(queues, "HOT", log, "next", release)  # the symbol is usable again
        assert log == ["holder in", "late shed", "holder out", "next in", "next out"], log
        return len(queues) + queues.waiting.now

    assert asyncio.run(scenario()) == 0
