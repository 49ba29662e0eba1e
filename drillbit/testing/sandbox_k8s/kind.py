"""The ``sandbox-k8s`` target kind: the sandbox, drilled through the Kubernetes driver.

``drill run experiments/k8s-pod-kill.yaml --env sandbox-k8s`` drives drillbit's kubernetes target
(and chaosk8s's plain probes) against a Kubernetes API whose pods are the sandbox's real replicas
(``bridge``), so the driver's recovery figures are real ones measured where no cluster can run.
``up`` brings the sandbox up when it is not, then the API; ``down`` stops the API, and the sandbox
only when this kind brought it up (a sandbox shared with other drills is left running).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from drillbit.core.errors import EnvironmentFailure
from drillbit.targets.kubernetes import KubernetesSpec, KubernetesTarget
from drillbit.targets.sandbox import procs, sandbox
from drillbit.targets.sandbox.driver import SandboxSpec
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.sandbox import Sandbox, SandboxState
from drillbit.testing.sandbox_k8s.bridge import BridgeState

__all__ = ["SandboxK8sKind", "bridge_running"]

Report = Callable[[str], None]
UNIT = "k8s-bridge"
START_TIMEOUT_S = 30.0


def _layout(spec: SandboxSpec, state_dir: Path | str | None) -> Layout:
    return Layout.at(state_dir or spec.state_dir)


def bridge_running(layout: Layout) -> BridgeState | None:
    """The bridge's state when its process is alive."""
    state = BridgeState.load(layout)
    if state is None:
        return None
    try:
        alive = psutil.Process(state.pid).is_running() and psutil.Process(state.pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    return state if alive else None


def _start_bridge(layout: Layout, sandbox_id: str, started_sandbox: bool) -> BridgeState:
    BridgeState.path(layout).unlink(missing_ok=True)
    env = {**os.environ, procs.ENV_SANDBOX: sandbox_id, procs.ENV_UNIT: UNIT}
    cmd = [sys.executable, "-m", "drillbit.testing.sandbox_k8s.bridge", "--state-dir", str(layout.state_dir)]
    with open(layout.logs / "k8s-bridge.log", "ab") as log:
        proc = subprocess.Popen(cmd + (["--started-sandbox"] if started_sandbox else []), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = BridgeState.load(layout)
        if state is not None and state.pid == proc.pid:
            return state
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    raise EnvironmentFailure(f"the sandbox's Kubernetes API did not start: see {layout.logs / 'k8s-bridge.log'}")


def _started_marker(layout: Layout) -> Path:
    """Present while the sandbox runs because this kind brought it up (outlives the bridge process)."""
    path = layout.root / "k8s" / "started-sandbox"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _stop_bridge(state: BridgeState) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGTERM)
    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        psutil.Process(state.pid).wait(timeout=10)


class SandboxK8sKind:
    """Registered in the ``drillbit.targets`` entry points; ``sandbox-k8s`` is always a target name."""

    name = "sandbox-k8s"
    spec_model = SandboxSpec

    def check_identity(self, name: str, spec: SandboxSpec, source: str) -> None:
        return None  # on loopback, created by drillbit: nothing else it could be

    def _target(self, name: str, layout: Layout, bridge: BridgeState) -> KubernetesTarget:
        sb = Sandbox.attach(layout.state_dir)
        k8s = KubernetesSpec(context=bridge.context, kubeconfig=bridge.kubeconfig, namespace=bridge.namespace,
                             server=bridge.url, api_url=sb.front_door_url, manifests=bridge.manifests)  # fmt: skip
        # the faults resolve this target again by name from this state dir: the sandbox's (and its
        # database, for the RPO read-back and the integrity checks)
        return KubernetesTarget(name, k8s, state_dir=layout.state_dir, dsn=sb.dsn)

    def attach(self, name: str, spec: SandboxSpec, state_dir: Path | str | None) -> KubernetesTarget:
        layout = _layout(spec, state_dir)
        bridge = bridge_running(layout)
        if bridge is None:
            raise EnvironmentFailure(f"the sandbox under {layout.state_dir} is not served as a Kubernetes API: run "
                                     f"`drill env up --env {name}`")  # fmt: skip
        return self._target(name, layout, bridge)

    def is_up(self, name: str, spec: SandboxSpec, state_dir: Path | str | None) -> bool:
        layout = _layout(spec, state_dir)
        state = SandboxState.load(layout)
        return state is not None and state.status == "up" and bridge_running(layout) is not None

    def up(self, name: str, spec: SandboxSpec, state_dir: Path | str | None, report: Report) -> KubernetesTarget:
        layout = _layout(spec, state_dir)
        state = SandboxState.load(layout)
        started = state is None or state.status != "up"
        if started:
            sandbox.up(spec.topology, layout.state_dir, report=report)
            _started_marker(layout).write_text("this kind brought the sandbox up: its down takes it down\n")
        bridge = bridge_running(layout)
        if bridge is None:
            sb = Sandbox.attach(layout.state_dir)
            try:
                bridge = _start_bridge(layout, sb.state.id, _started_marker(layout).exists())
            except EnvironmentFailure:
                if started:  # leave nothing this call started
                    sandbox.down(layout.state_dir, report=report)
                raise
            report(f"{name}: the sandbox served as a Kubernetes API on {bridge.url} (kubeconfig {bridge.kubeconfig}, "
                   f"context {bridge.context}, namespace {bridge.namespace})")  # fmt: skip
        return self._target(name, layout, bridge)

    def down(self, name: str, spec: SandboxSpec, state_dir: Path | str | None, report: Report) -> None:
        layout = _layout(spec, state_dir)
        bridge = bridge_running(layout)
        if bridge is not None:
            _stop_bridge(bridge)
            report(f"{name}: the Kubernetes API stopped")
        if bridge is None or bridge.started_sandbox or _started_marker(layout).exists():
            sandbox.down(layout.state_dir, report=report)  # removes the marker with the sandbox's files

    def status(self, name: str, spec: SandboxSpec, state_dir: Path | str | None) -> dict[str, Any]:
        layout = _layout(spec, state_dir)
        bridge = bridge_running(layout)
        return {
            "up": bridge is not None,
            "kubernetes_api": bridge.url if bridge else None,
            "kubeconfig": bridge.kubeconfig if bridge else None,
            **Sandbox.attach(layout.state_dir).status(),
        }
