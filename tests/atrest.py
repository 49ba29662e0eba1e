"""The shared test sandbox put back at rest between tests."""

from __future__ import annotations

from drillbit.targets.sandbox.driver import SandboxTarget
from drillbit.targets.sandbox.sandbox import Sandbox

__all__ = ["scale_back"]


def scale_back(box: Sandbox) -> None:
    """Every region back to its minimum replicas now, rather than after the autoscaler's scale-down
    stabilization window (the shipped 30 s): a drill waits for the target to be at rest before its
    baseline, so each drill after one that scaled out would wait out the window. Forcing it is safe: the
    autoscaler holds a higher recommendation only against a scale-down, never scales up a quiet region."""
    counts = box.replicas()
    above = [r for r in box.topology.regions if counts.get(r.name, {}).get("desired", 0) > r.api_replicas]
    for region in above:
        box.supervisor.set_numprocesses(f"api-{region.name}", region.api_replicas)
    if above:
        SandboxTarget(box).heal()
