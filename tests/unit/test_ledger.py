"""The active-drill record: a live drill blocks a second one; a dead one is found as an orphan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from drillbit.errors import EnvironmentFailure
from drillbit.ledger import LEDGER, ActiveDrill, Ledger, find_orphan, stop_orphaned_load


def _record(state: Path, entry: ActiveDrill) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / LEDGER).write_text(json.dumps(asdict(entry)))


def test_a_running_drill_is_recorded_and_its_record_removed_when_it_ends(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, tmp_path / "runs" / "r1", "sandbox").open()
    assert (tmp_path / LEDGER).exists()
    assert find_orphan(tmp_path) is None  # alive: not an orphan
    ledger.close()
    assert not (tmp_path / LEDGER).exists()


def test_a_second_drill_on_the_same_state_is_refused_while_the_first_lives(tmp_path: Path) -> None:
    Ledger(tmp_path, tmp_path / "r1", "sandbox").open()
    with pytest.raises(EnvironmentFailure, match="another drill"):
        Ledger(tmp_path, tmp_path / "r2", "sandbox").open()


def test_a_drill_whose_process_died_is_an_orphan(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _record(tmp_path, ActiveDrill(int(dead.stdout), 1.0, str(tmp_path / "r1"), "sandbox", str(tmp_path)))
    orphan = find_orphan(tmp_path)
    assert orphan is not None and orphan.run_dir == str(tmp_path / "r1")


def test_a_recycled_pid_is_not_mistaken_for_the_drill(tmp_path: Path) -> None:
    """Same pid, different start time: the drill died and another process got its pid."""
    _record(tmp_path, ActiveDrill(os.getpid(), 12345.0, str(tmp_path / "r1"), "sandbox", str(tmp_path)))
    assert find_orphan(tmp_path) is not None


def test_the_orphans_load_generator_is_stopped_by_its_process_group(tmp_path: Path) -> None:
    gen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        entry = ActiveDrill(1, 1.0, str(tmp_path), "sandbox", str(tmp_path), load_pgid=gen.pid)
        assert stop_orphaned_load(entry)
        assert gen.wait(10) == -9
    finally:
        gen.kill()
