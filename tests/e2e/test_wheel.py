"""drillbit as a user gets it: a wheel with one top-level package, installed into a fresh virtualenv
in a folder outside the checkout, where `drill init` starts a project that drills the sandbox.

The wheel is built from a copy of the checkout (a stale build/ never leaks into it) and installed
without its dependencies: those come from the test's own environment through a path entry, which
adds their modules but none of its install hooks, so the checkout's editable drillbit stays out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from drillbit.targets.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".drill", "runs", "__pycache__", ".*_cache")


def _run(args: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "drillbit"
    shutil.copytree(ROOT, src, ignore=SKIP)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(out), str(src)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = out.glob("drillbit-*.whl")
    return built


@pytest.fixture(scope="module")
def user(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh virtualenv with the wheel installed, and a working folder outside the checkout."""
    home = tmp_path_factory.mktemp("user")
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], home, {}).stdout.strip())
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRILL_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv))
    work = home / "work"
    work.mkdir()
    yield work, env
    _run(["drill", "env", "down"], work / "demo", env)  # whatever a failed test left up


def test_the_wheel_holds_one_top_level_package(wheel: Path) -> None:
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"drillbit", wheel.name.split("-py3")[0] + ".dist-info"}, tops


def test_outside_the_checkout_drillbit_imports_from_the_wheel_and_generic_names_do_not(
    user: tuple[Path, dict[str, str]],
) -> None:
    work, env = user
    where = _run(["python", "-c", "import drillbit; print(drillbit.__file__)"], work, env)
    assert where.returncode == 0 and not where.stdout.strip().startswith(str(ROOT)), where
    for name in ("probes", "reports", "loadtests", "sut"):
        assert _run(["python", "-c", f"import {name}"], work, env).returncode != 0, name


def test_drill_init_then_a_pod_kill_drill_passes_and_its_report_is_sealed(
    user: tuple[Path, dict[str, str]], sandbox_env: Sandbox
) -> None:
    """The installed wheel drills the session's sandbox (its own cold start and stop are the next
    test's), with the demo's pod-kill at 5 s baseline and cool-down as the other e2e drills."""
    work, env = user
    init = _run(["drill", "init", "demo"], work, env)
    assert init.returncode == 0, init.stderr
    demo = work / "demo"
    experiment = demo / "experiments" / "pod-kill.yaml"
    experiment.write_text(experiment.read_text().replace("baseline_s: 10", "baseline_s: 3").replace(
        "cooldown_s: 10", "cooldown_s: 3"))  # fmt: skip
    shared = {**env, "DRILL_STATE_DIR": str(sandbox_env.layout.state_dir)}
    drill = _run(["drill", "run", "experiments/pod-kill.yaml", "--env", "sandbox", "--plain"], demo, shared,
                 timeout=600)  # fmt: skip
    runs = sorted((demo / "runs").glob("*-pod-kill"))
    assert runs, drill.stderr[-3000:]
    load = json.loads((runs[-1] / "load.json").read_text())
    if load.get("saturated"):  # a machine too busy to generate the load: INCONCLUSIVE, as it must be
        assert drill.returncode == 3, drill.stderr[-3000:]
    else:
        assert drill.returncode == 0, drill.stderr[-3000:]
    assert (runs[-1] / "report.html").is_file() and (runs[-1] / "MANIFEST").is_file()
    verify = _run(["drill", "verify", runs[-1]], demo, env)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_drill_env_up_status_down_from_the_wheel(user: tuple[Path, dict[str, str]]) -> None:
    work, env = user
    demo = work / "demo"
    demo.mkdir(exist_ok=True)
    up = _run(["drill", "env", "up"], demo, env)
    assert up.returncode == 0, up.stderr[-3000:]
    assert json.loads(up.stdout)["kind"] == "sandbox"
    status = _run(["drill", "env", "status"], demo, env)
    assert status.returncode == 0 and json.loads(status.stdout)["up"] is True, status.stdout + status.stderr
    down = _run(["drill", "env", "down"], demo, env)
    assert down.returncode == 0, down.stderr[-3000:]
    after = _run(["drill", "env", "status"], demo, env)
    assert after.returncode == 4 and "drill env up" in after.stderr, after.stdout + after.stderr
