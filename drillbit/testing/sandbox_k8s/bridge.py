"""The process that serves a running sandbox as a Kubernetes API (``python -m drillbit.testing.sandbox_k8s.bridge``).

It renders the manifests the sandbox is sized from, serves them and the sandbox's processes over a
fake Kubernetes API on loopback (``SandboxCluster``), under the drill runner's own RBAC from those
manifests (a request the Role does not grant is refused: a drill that passes here needs no more),
writes a kubeconfig for it and its state to ``<sandbox>/k8s/``, and syncs until SIGTERM. It carries
the sandbox's process tags, so ``drill env down`` stops it with the rest.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drillbit.core.errors import ConfigError, DrillError
from drillbit.manifests.render import render
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.sandbox import Sandbox
from drillbit.testing.kubeapi import AuditLog, AuditRecord, FakeKubeAPI, Policy
from drillbit.testing.sandbox_k8s.cluster import SandboxCluster

__all__ = ["AUDIT", "CONTEXT", "RUNNER", "BridgeState", "FileAudit", "main", "runner_policy"]

log = logging.getLogger(__name__)

CONTEXT = "sandbox-k8s"
RUNNER = "drill-runner"  # the ServiceAccount whose Roles the API enforces
SYNC_S = 0.25
AUDIT = "audit.jsonl"  # beside bridge.json: every request the API answered


@dataclass(frozen=True)
class BridgeState:
    """``<sandbox>/k8s/bridge.json``."""

    pid: int
    url: str
    kubeconfig: str
    context: str
    namespace: str
    manifests: str
    started_sandbox: bool

    @staticmethod
    def path(layout: Layout) -> Path:
        return layout.root / "k8s" / "bridge.json"

    @classmethod
    def load(cls, layout: Layout) -> BridgeState | None:
        try:
            return cls(**json.loads(cls.path(layout).read_text()))
        except (OSError, ValueError, TypeError):
            return None


class FileAudit(AuditLog):
    """The API's audit log, each record also appended to a JSON-lines file (a drill's API calls and
    any refused request can be counted from another process)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._file = path.open("a", encoding="utf-8", buffering=1)

    def add(self, record: AuditRecord) -> None:
        super().add(record)
        self._file.write(json.dumps(asdict(record)) + "\n")

    def close(self) -> None:
        self._file.close()


def runner_policy(objects: list[dict[str, Any]], namespace: str, account: str = RUNNER) -> Policy:
    """The Roles and ClusterRoles bound to the ServiceAccount ``account`` of ``namespace`` in the
    manifests (a binding to the same name in another namespace grants this one nothing)."""
    bound: set[tuple[str, str]] = set()
    for obj in objects:
        if obj.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        home = (obj.get("metadata") or {}).get("namespace")  # a RoleBinding's subject defaults to its namespace
        if any(s.get("kind") == "ServiceAccount" and s.get("name") == account
               and (s.get("namespace") or home) == namespace for s in obj.get("subjects") or []):  # fmt: skip
            bound.add((obj["roleRef"]["kind"], obj["roleRef"]["name"]))
    roles = [o for o in objects if (o.get("kind"), (o.get("metadata") or {}).get("name")) in bound]
    if not roles:
        raise ConfigError("manifests", f"no Role or ClusterRole is bound to the ServiceAccount "
                                       f"{namespace}/{account}: the drill runner could do nothing")  # fmt: skip
    return Policy.from_documents(roles)


def serve(state_dir: Path, started_sandbox: bool) -> int:
    sb = Sandbox.attach(state_dir)
    if not sb.topology.manifests:
        raise ConfigError(sb.state.topology_file, "manifests: required for a sandbox served as a Kubernetes API "
                                                  "(the overlay whose objects it serves)")  # fmt: skip
    manifests = (Path(sb.state.topology_file).resolve().parent / sb.topology.manifests).resolve()
    objects = render(manifests, origins=False).objects
    workload = sb.topology.api_workload
    deployment = next((o for o in objects if o.get("kind") == "Deployment" and o["metadata"]["name"] == workload), None)
    if deployment is None:
        raise ConfigError(str(manifests), f"no Deployment {workload!r} in the rendered manifests")
    namespace = deployment["metadata"].get("namespace") or "default"
    api = FakeKubeAPI(policy=runner_policy(objects, namespace))
    BridgeState.path(sb.layout).parent.mkdir(parents=True, exist_ok=True)
    audit = FileAudit(BridgeState.path(sb.layout).parent / AUDIT)
    api.audit = audit
    cluster = SandboxCluster(sb, api.store, objects, namespace=namespace, api_workload=workload)
    api.backend = cluster
    cluster.seed()
    api.start()
    out = BridgeState.path(sb.layout).parent
    kubeconfig = api.write_kubeconfig(out / "kubeconfig", context=CONTEXT, namespace=namespace, user=RUNNER)
    state = BridgeState(os.getpid(), api.url, str(kubeconfig), CONTEXT, namespace, str(manifests), started_sandbox)
    tmp = BridgeState.path(sb.layout).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(BridgeState.path(sb.layout))
    log.warning("serving the sandbox %s as a Kubernetes API on %s (namespace %s)", sb.state.id, api.url, namespace)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: cluster.close())
    try:
        cluster.run(SYNC_S)
    finally:
        cluster.close()
        api.stop()
        audit.close()
        BridgeState.path(sb.layout).unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drillbit.testing.sandbox_k8s.bridge")
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--started-sandbox", action="store_true", help="down takes the sandbox down too")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return serve(args.state_dir, args.started_sandbox)
    except DrillError as err:
        log.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
