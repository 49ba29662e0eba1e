"""Load profiles: validation at the edge, stages and shapes over time, open-model arrival schedules."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from drillbit.core.errors import EXIT_CONFIG, ConfigError
from drillbit.load.profiles import arrivals, load_profile, shape_at

PROFILES_DIR = Path(__file__).resolve().parents[2] / "loadtests" / "profiles"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["steady", "step", "spike", "soak"])
def test_every_required_profile_ships_and_is_valid(name: str) -> None:
    p = load_profile(name)
    assert p.name == name and p.duration > 0 and p.model == "open"


def test_every_shipped_profile_is_valid() -> None:
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
    assert {"steady", "step", "spike", "soak"} <= set(names)
    for name in names:
        assert load_profile(name).duration > 0


def test_the_steady_default_fits_a_two_core_sandbox() -> None:
    steady = load_profile("steady")
    assert [s.rate for s in steady.stages] == [80]  # ~48 orders/s; measured on the sandbox: p95 9 ms
    assert steady.max_in_flight >= 2 * 80  # a 2 s stall at that rate stays under the in-flight cap


def test_every_problem_is_named_on_one_line_with_the_file_and_exit_code_2(tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "name: x\nmodel: open\nstages:\n  - {duration: 10, users: 5}\n  - {duration: -1, rate: 5}\nspeed: 3\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_profile(bad)
    msg = str(exc.value)
    assert msg.startswith(f"{bad}: ") and "\n" not in msg
    assert "stages[1].duration: Input should be greater than 0" in msg
    assert "speed: unknown field: remove it or check its spelling" in msg
    assert exc.value.exit_code == EXIT_CONFIG == 2
    assert exc.value.source == str(bad) and len(exc.value.problems) == 2


def test_an_open_stage_takes_a_rate_and_a_closed_stage_takes_users(tmp_path: Path) -> None:
    bad = _write(tmp_path, "name: x\nmodel: open\nstages:\n  - {duration: 10, users: 5}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: stages\[0\]: an open-model stage takes rate \(requests/s\)"):
        load_profile(bad)
    bad = _write(tmp_path, "name: x\nmodel: closed\nstages:\n  - {duration: 10, rate: 5}\n")
    with pytest.raises(ConfigError, match=r"stages\[0\]: a closed-model stage takes users"):
        load_profile(bad)


def test_missing_and_mistyped_fields_are_named(tmp_path: Path) -> None:
    bad = _write(tmp_path, "model: sideways\nstages: []\nmax_in_flight: lots\n")
    with pytest.raises(ConfigError) as exc:
        load_profile(bad)
    problems = exc.value.problems
    assert any(p.startswith("name: required") for p in problems)
    assert any(p.startswith("model: Input should be 'open' or 'closed'") for p in problems)
    assert any(p.startswith("stages: List should have at least 1 item") for p in problems)
    assert any(p.startswith("max_in_flight: ") for p in problems)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    bad = _write(tmp_path, "name: x\nstages:\n  - {duration: 10, rate: 5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_profile(bad)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_profile(_write(tmp_path, "- just\n- a list\n"))


def test_an_unknown_profile_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no such profile: use one of .*steady"):
        load_profile("nonesuch")


def test_stage_at_walks_the_stages() -> None:
    p = load_profile("step")
    assert [p.stage_at(t).rate for t in (0, 29.9, 30, 65, 95)] == [50, 50, 100, 200, 300]  # type: ignore[union-attr]
    assert p.stage_at(p.duration) is None


def test_scheduled_counts_requests_up_to_a_time() -> None:
    p = load_profile("step")  # 30 s each at 50, 100, 200, 300 req/s
    assert p.scheduled() == 30 * (50 + 100 + 200 + 300)
    assert p.scheduled(45) == 30 * 50 + 15 * 100
    assert p.scheduled(-1) == 0 and p.scheduled(10_000) == p.scheduled()


def test_closed_shape_gives_each_stage_users_and_spawn_rate(tmp_path: Path) -> None:
    path = tmp_path / "closed.yaml"
    path.write_text(
        "name: c\nmodel: closed\nstages:\n  - {duration: 10, users: 5, spawn_rate: 2}\n  - {duration: 5, users: 20}\n"
    )
    p = load_profile(path)
    assert shape_at(p, 0) == (5, 2.0)
    assert shape_at(p, 9.99) == (5, 2.0)
    assert shape_at(p, 10) == (20, 20.0)  # no spawn_rate: all users at once
    assert shape_at(p, 15) is None


def test_open_shape_runs_one_scheduler_per_process_until_the_schedule_has_drained() -> None:
    p = load_profile("spike")  # 150 s, timeout 5 s
    assert shape_at(p, 0, workers=2, live_users=0) == (2, 100.0)  # at the start nobody runs yet: keep going
    assert shape_at(p, 75, workers=2, live_users=2) == (2, 100.0)  # mid-spike: the rate is in the schedule
    assert shape_at(p, 150.5, workers=2, live_users=1) == (2, 100.0)  # a scheduler still drains its requests
    assert shape_at(p, 150.5, workers=2, live_users=0) is None  # every scheduler finished
    assert shape_at(p, 150 + 5 + 1, workers=2, live_users=1) is None  # backstop: timeout + 1 s after the end


def test_uniform_arrivals_follow_the_rate_and_the_share() -> None:
    p = load_profile("step")
    times = np.fromiter(arrivals(p, 1000.0, 0.5, random.Random(1)), dtype=float)
    assert len(times) == p.scheduled() * 0.5
    first = times[times < 1030.0]
    assert len(first) == 750 and np.allclose(np.diff(first), 1 / 25)
    assert times[0] == 1000.0 and times[750] == 1030.0  # each stage starts on its boundary
    assert (np.diff(times) > 0).all() and times.max() < 1000.0 + p.duration


def test_poisson_arrivals_average_the_rate_with_exponential_gaps() -> None:
    p = load_profile("steady")
    times = np.fromiter(arrivals(p, 0.0, 1.0, random.Random(7)), dtype=float)
    assert len(times) == pytest.approx(p.scheduled(), rel=0.05)
    gaps = np.diff(times)
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.1)  # exponential: sd == mean
    assert times.min() > 0 and times.max() < p.duration


def test_the_seed_scale_profiles_say_their_users_and_symbols() -> None:
    users = load_profile("users-1000")
    assert users.model == "closed" and max(s.users or 0 for s in users.stages) == 1000
    assert users.symbols == 500 and users.think_s == (1.0, 3.0)
    assert load_profile("symbols-1800").symbols == 1800


def test_a_think_time_out_of_order_is_refused_with_the_field(tmp_path: Path) -> None:
    bad = _write(tmp_path, "name: x\nmodel: closed\nstages: [{duration: 5, users: 2}]\nthink_s: [3, 1]\n")
    with pytest.raises(ConfigError, match="think_s"):
        load_profile(str(bad))


def test_the_traders_spread_over_the_profiles_symbols() -> None:
    from drillbit.load.symbols import SYMBOLS, new_order, symbol_universe

    assert symbol_universe(None) == SYMBOLS
    many = symbol_universe(1800)
    assert len(many) == 1800 and list(many)[:5] == list(SYMBOLS) and all(p > 0 for p in many.values())
    rng = random.Random(7)
    seen = {new_order(rng, many)["symbol"] for _ in range(5000)}
    assert len(seen) > 1000  # spread over the universe, not the five liquid ones
