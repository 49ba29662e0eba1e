"""Run an experiment with ``drill run`` in a process of its own and interrupt it (SIGINT) once a
condition holds: the data drills' SIGINT tests (what is rolled back and healed is theirs to check)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from drillbit.targets.sandbox.sandbox import Sandbox

__all__ = ["sigint_when"]


def sigint_when(sandbox: Sandbox, experiment: dict[str, Any], tmp_path: Path, ready: Callable[[], bool], *,
                windows_s: float, settle_s: float = 0.0, poll_s: float = 0.1) -> tuple[int, str]:  # fmt: skip
    """``experiment`` (baseline and cooldown set to ``windows_s``) run against ``sandbox``, SIGINTed
    ``settle_s`` after ``ready()`` first holds (within 120 s); its exit code and output."""
    for ext in experiment["extensions"]:
        if ext["name"] == "drillbit":
            ext.update(baseline_s=windows_s, cooldown_s=windows_s)
    path = tmp_path / "exp" / "experiment.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    env = {**os.environ, "DRILL_STATE_DIR": str(sandbox.layout.state_dir)}
    cmd = [sys.executable, "-m", "drillbit.cli", "run", str(path), "--out", str(tmp_path / "runs"), "--plain"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
            time.sleep(poll_s)
        time.sleep(settle_s)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(output[-3000:])
    return proc.returncode, output
