"""The active-drill record: a live drill blocks a second one; a dead one is found as an orphan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import psutil
import pytest

from drillbit.core.errors import EnvironmentFailure
from drillbit.ledger import LEDGER, ActiveDrill, Ledger, find_orphan, stop_orphaned_load


def _record(state: Path, entry: ActiveDrill) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / LEDGER).write_text(json.dumps(asdict(entry)))


def test_a_running_drill_is_recorded_and_its_record_removed_when_it_ends(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "sandbox", tmp_path).open()
    assert (tmp_path / LEDGER).exists()
    assert find_orphan(tmp_path) is None  # alive: not an orphan
    ledger.close()
    assert not (tmp_path / LEDGER).exists()


def test_a_second_drill_on_the_same_state_is_refused_while_the_first_lives(tmp_path: Path) -> None:
    first = Ledger(tmp_path, "sandbox", tmp_path).open()
    first.update(run_dir=str(tmp_path / "r1"))
    other = subprocess.run(  # another process tries to take the record while this one holds it
        [sys.executable, "-c", "import sys; from pathlib import Path; from drillbit.ledger import Ledger; "
         "Ledger(Path(sys.argv[1]), 'sandbox', None).open()", str(tmp_path)],
        capture_output=True, text=True)  # fmt: skip
    assert other.returncode != 0 and "another drill" in other.stderr and "r1" in other.stderr


def test_a_dead_drills_record_is_not_overwritten_before_its_clean_up(tmp_path: Path) -> None:
    _record(tmp_path, ActiveDrill(2**22 + 7, 1.0, str(tmp_path / "r1"), "sandbox", str(tmp_path)))
    with pytest.raises(EnvironmentFailure, match="crashed drill's record"):
        Ledger(tmp_path, "sandbox", tmp_path).open()


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
        entry = ActiveDrill(1, 1.0, str(tmp_path), "sandbox", str(tmp_path), load_pgid=gen.pid,
                            load_started=psutil.Process(gen.pid).create_time())
        assert stop_orphaned_load(entry)
        assert gen.wait(10) == -9
    finally:
        gen.kill()


def test_a_recycled_load_generator_pid_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        entry = ActiveDrill(1, 1.0, str(tmp_path), "sandbox", str(tmp_path), load_pgid=other.pid, load_started=1.0)
        assert not stop_orphaned_load(entry)
        assert other.poll() is None
    finally:
        other.kill()
