"""Before its baseline a drill waits for the target at rest: whole, and scaled back in to its
minimum. A scripted target (plain class, real clock) stands in for the sandbox."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from drillbit import runner
from drillbit.core.errors import EnvironmentFailure


@dataclass
class Scripted:
    """whole() from ``whole_after`` s on; settled() (at rest) from ``rest_after`` s on (None: never)."""

    whole_after: float | None = 0.0
    rest_after: float | None = 0.0
    heals: bool = False
    t0: float = field(default_factory=time.monotonic)
    healed: int = 0

    def _since(self, after: float | None) -> bool:
        return after is not None and time.monotonic() - self.t0 >= after

    def whole(self) -> bool:
        return self._since(self.whole_after) or (self.heals and self.healed > 0)

    def settled(self) -> bool:
        return self.whole() and self._since(self.rest_after)

    def heal(self) -> dict[str, object]:
        self.healed += 1
        return {"whole": self.heals, "landed": self.heals, "restored": []}


@pytest.fixture(autouse=True)
def _short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "SETTLE_S", 0.3)
    monkeypatch.setattr(runner, "SETTLE_TIMEOUT_S", 1.0)
    monkeypatch.setattr(runner, "AT_REST_TIMEOUT_S", 2.0)


def test_a_target_at_rest_starts_the_baseline_with_no_note() -> None:
    target = Scripted()
    assert runner._steady_before_baseline(target) is None  # type: ignore[arg-type]
    assert target.healed == 0


def test_the_baseline_waits_until_the_autoscaler_has_scaled_back_in() -> None:
    target = Scripted(rest_after=1.0)
    started = time.monotonic()
    assert runner._steady_before_baseline(target) is None  # type: ignore[arg-type]
    assert time.monotonic() - started >= 1.0 + 0.3  # at rest, then steadily so for SETTLE_S


def test_a_target_still_scaled_out_runs_with_a_note_saying_so() -> None:
    note = runner._steady_before_baseline(Scripted(rest_after=None))  # type: ignore[arg-type]
    assert note is not None and "still scaled out above its minimum" in note


def test_a_target_that_is_not_whole_is_healed_once_and_then_runs() -> None:
    target = Scripted(whole_after=None, rest_after=None, heals=True)
    assert runner._steady_before_baseline(target) is None  # type: ignore[arg-type]
    assert target.healed == 1


def test_a_target_healing_cannot_make_whole_is_an_environment_error() -> None:
    target = Scripted(whole_after=None, rest_after=None, heals=False)
    with pytest.raises(EnvironmentFailure, match="not whole and steady"):
        runner._steady_before_baseline(target)  # type: ignore[arg-type]
    assert target.healed == 1
