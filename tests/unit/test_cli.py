"""Bad input on the command line: one line naming what is wrong and the fix, exit code 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def _drill(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drillbit.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_unknown_env_name_is_a_one_line_error(tmp_path: Path) -> None:
    line = _one_line_error(_drill("env", "up", "--env", "prod-eu", "--state-dir", str(tmp_path)))
    assert "--env" in line and "prod-eu" in line and "sandbox" in line


def test_malformed_topology_names_file_and_field(tmp_path: Path) -> None:
    topo = tmp_path / "topology.yaml"
    topo.write_text(
        "regions:\n  - name: region-a\n    api_replicas: -1\n  - name: region-b\nfront_door: {port: 70000}\n"
    )
    line = _one_line_error(_drill("env", "up", "--topology", str(topo), "--state-dir", str(tmp_path / "s")))
    assert str(topo) in line
    assert "regions[0].api_replicas" in line and "front_door.port" in line


def test_topology_that_is_not_yaml_is_a_one_line_error(tmp_path: Path) -> None:
    topo = tmp_path / "topology.yaml"
    topo.write_text("regions: [\n")
    line = _one_line_error(_drill("env", "up", "--topology", str(topo), "--state-dir", str(tmp_path / "s")))
    assert "not valid YAML" in line


def test_port_collision_names_the_field_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        topo = tmp_path / "topology.yaml"
        topo.write_text(f"regions:\n  - name: region-a\n  - name: region-b\nfront_door:\n  port: {port}\n")
        line = _one_line_error(_drill("env", "up", "--topology", str(topo), "--state-dir", str(tmp_path / "s")))
    assert f"front_door.port: port {port} is already in use" in line and "set 0" in line
    assert not (tmp_path / "s" / "sandbox").exists()


def test_unknown_command_is_a_one_line_usage_error() -> None:
    line = _one_line_error(_drill("env", "explode"))
    assert "explode" in line


def test_status_without_a_sandbox_says_how_to_start_one(tmp_path: Path) -> None:
    proc = _drill("env", "status", "--state-dir", str(tmp_path))
    assert proc.returncode == 4
    assert "drill env up" in proc.stderr and "Traceback" not in proc.stderr
