"""The RPO analyzer on synthetic heartbeats whose truth is exact."""

import math

import pandas as pd
import pytest

from probes.rpo import analyze_rpo


def heartbeats(outcomes: str) -> pd.DataFrame:
    """One write per character: a acked, f failed (server error), i indeterminate."""
    kinds = {"a": "acked", "f": "failed", "i": "indeterminate"}
    rows = []
    for n, c in enumerate(outcomes, start=1):
        sent = 100.0 + n * 0.1
        rows.append(
            {"seq": n, "sent": sent, "acked": sent + 0.01 if c == "a" else math.nan, "outcome": kinds[c], "error": None}
        )
    return pd.DataFrame(rows)


def readback(counts: dict[int, int]) -> pd.DataFrame:
    return pd.DataFrame({"seq": list(counts), "count": list(counts.values())})


def test_lost_indeterminate_and_unexpectedly_present_are_kept_apart() -> None:
    hb = heartbeats("aaaaiifa")  # seqs 1..8
    back = readback({1: 1, 2: 1, 5: 1, 7: 1, 8: 1})  # 3, 4 lost; 5 indet present; 6 indet absent; 7 failed but there
    r = analyze_rpo(hb, back, fault_at=101.0)
    assert r.lost == 2 and r.lost_seqs == [3, 4]
    assert r.window_s == pytest.approx(101.0 - (100.3 + 0.01))
    assert (r.indeterminate, r.indeterminate_present, r.indeterminate_absent) == (2, 1, 1)
    assert r.failed == 1 and r.unexpectedly_present == [7]


def test_duplicates_and_strangers_are_reported() -> None:
    r = analyze_rpo(heartbeats("aaa"), readback({1: 1, 2: 2, 3: 1, 99: 1}), fault_at=100.5)
    assert r.duplicates == [2] and r.unknown_present == [99] and r.lost == 0 and r.window_s == 0.0
