"""Load profiles: validation at the edge, stages over time, open-model arrival schedules."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from drillbit.errors import ConfigError
from loadtests.profiles import PROFILES_DIR, arrivals, load_profile


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
def test_every_shipped_profile_is_valid(name: str) -> None:
    assert load_profile(name).duration > 0


def test_every_problem_is_named_on_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nmodel: open\nstages:\n  - {duration: 10, users: 5}\n  - {duration: -1, rate: 5}\nspeed: 3\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_profile(bad)
    msg = str(exc.value)
    assert msg.startswith(str(bad)) and "\n" not in msg
    assert "stages[1].duration" in msg and "speed: unknown field" in msg
    assert exc.value.exit_code == 2


def test_an_open_stage_needs_a_rate(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: open\nstages:\n  - {duration: 10, users: 5}\n")
    with pytest.raises(ConfigError, match=r"stages\[0\]: an open-model stage needs rate"):
        load_profile(bad)


def test_an_unknown_profile_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"use one of .*steady"):
        load_profile("nonesuch")


def test_stage_at_walks_the_stages() -> None:
    p = load_profile("step")
    assert [p.stage_at(t).rate for t in (0, 29.9, 30, 65, 95)] == [25, 25, 50, 100, 150]  # type: ignore[union-attr]
    assert p.stage_at(p.duration) is None


def test_uniform_arrivals_follow_the_rate_and_the_share() -> None:
    p = load_profile("step")
    times = np.fromiter(arrivals(p, 1000.0, 0.5, random.Random(1)), dtype=float)
    assert len(times) == pytest.approx(p.scheduled() * 0.5, abs=4)
    first = times[times < 1030.0]
    assert np.allclose(np.diff(first), 1 / 12.5)
    assert (np.diff(times) > 0).all()


def test_poisson_arrivals_average_the_rate() -> None:
    p = load_profile("steady")
    times = np.fromiter(arrivals(p, 0.0, 1.0, random.Random(7)), dtype=float)
    assert len(times) == pytest.approx(p.scheduled(), rel=0.05)
    assert times.max() < p.duration
