"""drillbit's own resilience rules over rendered Kubernetes manifests.

Each rule has an id, the seed requirement it protects and a severity; each finding names the
object, the source file and the fix. The rules look at the workloads that serve (Deployments
and StatefulSets) and at what guards them (PodDisruptionBudgets and HPAs selecting them).

An object may be exempted from a rule on purpose with the annotation
``drillbit.dev/exempt: "DRILL-K8S-001: why"`` (several rules: one per line); the exemption is
reported as ``info`` with its reason, never silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EXEMPT", "RULES", "SEVERITIES", "Finding", "Rule", "Workload", "run_rules", "workloads"]

EXEMPT = "drillbit.dev/exempt"
SEVERITIES = ("info", "warning", "error")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
ZONE_KEY = "topology.kubernetes.io/zone"
# what Kubernetes assumes when a field is absent
DEFAULT_PERIOD_S, DEFAULT_FAILURES, DEFAULT_GRACE_S = 10, 3, 30


@dataclass(frozen=True)
class Finding:
    rule: str
    requirement: str
    severity: str  # info | warning | error
    object: str  # Kind/name
    file: str
    message: str
    source: str = "drillbit"  # drillbit | kubernetes-validate | checkov

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet, with the PDBs and HPA that select it."""

    obj: dict[str, Any]
    pdbs: list[dict[str, Any]]
    hpa: dict[str, Any] | None

    @property
    def name(self) -> str:
        return f"{self.obj['kind']}/{self.obj['metadata']['name']}"

    @property
    def spec(self) -> dict[str, Any]:
        return self.obj.get("spec") or {}

    @property
    def pod(self) -> dict[str, Any]:
        return (self.spec.get("template") or {}).get("spec") or {}

    @property
    def containers(self) -> list[dict[str, Any]]:
        return [c for c in self.pod.get("containers") or [] if isinstance(c, dict)]

    @property
    def replicas(self) -> int:
        """The fewest replicas it runs with: the HPA's minimum when an HPA scales it."""
        if self.hpa is not None:
            return int((self.hpa.get("spec") or {}).get("minReplicas", 1))
        return int(self.spec.get("replicas", 1))

    def serving(self) -> list[dict[str, Any]]:
        """Containers that take traffic (they declare a port)."""
        return [c for c in self.containers if c.get("ports")]


@dataclass(frozen=True)
class Rule:
    id: str
    requirement: str
    title: str
    fix: str
    check: Callable[[Workload], Iterator[str]]  # yields what is wrong, in words
    severity: str = "error"


def _labels_match(selector: dict[str, Any] | None, labels: dict[str, Any]) -> bool:
    """matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist) against ``labels``."""
    if not selector:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)  # fmt: skip
        if not ok:
            return False
    return True


def workloads(objects: list[dict[str, Any]]) -> list[Workload]:
    """Every Deployment and StatefulSet, with the PDBs (same namespace, selecting its pods) and the HPA
    (scaleTargetRef) that guard it."""
    out = []
    for obj in objects:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        ns = (obj.get("metadata") or {}).get("namespace")
        labels = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        pdbs = [p for p in objects if p.get("kind") == "PodDisruptionBudget"
                and (p.get("metadata") or {}).get("namespace") == ns
                and _labels_match((p.get("spec") or {}).get("selector"), labels)]  # fmt: skip
        hpa = next((h for h in objects if h.get("kind") == "HorizontalPodAutoscaler"
                    and (h.get("metadata") or {}).get("namespace") == ns
                    and ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("kind") == obj["kind"]
                    and ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == obj["metadata"]["name"]),
                   None)  # fmt: skip
        out.append(Workload(obj, pdbs, hpa))
    return out


def _absolute(value: Any, total: int, round_up: bool) -> int | None:
    """An int-or-percent field as a count of ``total`` (Kubernetes rounds percentages: up for a
    PDB, up for maxSurge, down for maxUnavailable)."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (m := re.fullmatch(r"(\d+)%", value.strip())):
        share = int(m.group(1)) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return None


def allowed_disruptions(pdb: dict[str, Any], replicas: int) -> int | None:
    """How many of ``replicas`` pods the PDB lets go at once (None: it cannot be read)."""
    spec = pdb.get("spec") or {}
    if "maxUnavailable" in spec:
        return _absolute(spec["maxUnavailable"], replicas, round_up=True)
    if "minAvailable" in spec:
        least = _absolute(spec["minAvailable"], replicas, round_up=True)
        return None if least is None else replicas - least
    return None


def _replicas(w: Workload) -> Iterator[str]:
    if w.replicas < 2:
        source = f"the HPA's minReplicas is {w.replicas}" if w.hpa else f"replicas: {w.replicas}"
        yield f"{source}: one pod lost is the service lost"


def _pdb(w: Workload) -> Iterator[str]:
    if not w.pdbs:
        yield "no PodDisruptionBudget selects its pods: a drain may take them all at once"
        return
    for p in w.pdbs:
        allowed = allowed_disruptions(p, w.replicas)
        name = f"PodDisruptionBudget/{p['metadata']['name']}"
        if allowed is None:
            yield f"{name} sets neither a readable minAvailable nor maxUnavailable"
        elif allowed < 1:
            yield f"{name} permits no disruption at {w.replicas} replicas: a node drain blocks forever"
        elif allowed >= w.replicas:
            yield f"{name} permits {allowed} disruptions of {w.replicas} replicas: a drain may take them all"


def _readiness(w: Workload) -> Iterator[str]:
    for c in w.serving():
        if not c.get("readinessProbe"):
            yield f"container {c.get('name')!r} serves a port but has no readinessProbe: traffic reaches it unready"


def _zones(w: Workload) -> Iterator[str]:
    spread = any(t.get("topologyKey") == ZONE_KEY and t.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
                 and (t.get("maxSkew") or 0) >= 1 for t in w.pod.get("topologySpreadConstraints") or [])  # fmt: skip
    anti = (w.pod.get("affinity") or {}).get("podAntiAffinity") or {}
    required = any(t.get("topologyKey") == ZONE_KEY
                   for t in anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])  # fmt: skip
    if not (spread or required):
        yield (f"no topologySpreadConstraint on {ZONE_KEY} with whenUnsatisfiable: DoNotSchedule (nor a required "
               "zone anti-affinity): all replicas may land in one zone")  # fmt: skip


def _hpa_min(w: Workload) -> Iterator[str]:
    if w.hpa is None:
        return
    low = int((w.hpa.get("spec") or {}).get("minReplicas", 1))
    for p in w.pdbs:
        spec = p.get("spec") or {}
        least = _absolute(spec["minAvailable"], low, round_up=True) if "minAvailable" in spec else None
        if least is not None and low < least + 1:
            yield (f"HPA minReplicas {low} < PodDisruptionBudget/{p['metadata']['name']} minAvailable "
                   f"{least} + 1: at the minimum no pod may be disrupted")  # fmt: skip


def _rolling(w: Workload) -> Iterator[str]:
    strategy = w.spec.get("strategy") or w.spec.get("updateStrategy") or {}
    if strategy.get("type") in ("Recreate", "OnDelete"):
        if w.obj["kind"] == "Deployment":
            yield "strategy Recreate stops every replica before starting new ones: an update is downtime"
        return
    rolling = strategy.get("rollingUpdate") or {}
    unavailable = _absolute(rolling.get("maxUnavailable", "25%"), w.replicas, round_up=False)
    surge = _absolute(rolling.get("maxSurge", "25%"), w.replicas, round_up=True)
    if unavailable is None:
        return
    if w.obj["kind"] == "Deployment" and unavailable == 0 and surge == 0:
        yield "maxSurge and maxUnavailable are both 0: the rollout cannot progress"
    if unavailable >= w.replicas:
        yield f"maxUnavailable {unavailable} of {w.replicas} replicas: a rollout may take them all down"
    for p in w.pdbs:
        allowed = allowed_disruptions(p, w.replicas)
        if allowed is not None and unavailable > allowed:
            yield (f"rolling update maxUnavailable {unavailable} exceeds what PodDisruptionBudget/"
                   f"{p['metadata']['name']} allows ({allowed}): an update takes more than a drain may")  # fmt: skip


def _resources(w: Workload) -> Iterator[str]:
    for c in [*w.containers, *(w.pod.get("initContainers") or [])]:
        res = c.get("resources") or {}
        missing = [f"{kind}.{r}" for kind in ("requests", "limits") for r in ("cpu", "memory")
                   if r not in (res.get(kind) or {})]  # fmt: skip
        if missing:
            yield f"container {c.get('name')!r} sets no {', '.join(missing)}"


def _tags(w: Workload) -> Iterator[str]:
    for c in [*w.containers, *(w.pod.get("initContainers") or [])]:
        image = str(c.get("image") or "")
        if "@sha256:" in image:
            continue
        name = image.rsplit("/", 1)[-1]
        tag = name.split(":", 1)[1] if ":" in name else None
        if tag is None or tag == "latest":
            what = "no tag" if tag is None else "latest"
            yield f"container {c.get('name')!r} runs {image!r}: {what} is not a release"


def _grace(w: Workload) -> Iterator[str]:
    grace = int(w.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))
    for c in w.serving():
        probe = c.get("readinessProbe")
        if not probe:
            continue  # DRILL-K8S-003 reports it
        period, failures = probe.get("periodSeconds", DEFAULT_PERIOD_S), probe.get("failureThreshold", DEFAULT_FAILURES)
        notice = int(period) * int(failures)
        if grace <= notice:
            yield (f"terminationGracePeriodSeconds {grace} <= the readiness period x failures of {c.get('name')!r} "
                   f"({notice} s): the pod is killed before the load balancer has noticed it leaving")  # fmt: skip


RULES: tuple[Rule, ...] = (
    Rule("DRILL-K8S-001", "R1.5", "at least 2 replicas", "set replicas (or the HPA's minReplicas) >= 2", _replicas),
    Rule("DRILL-K8S-002", "R1.4", "a PodDisruptionBudget that permits one disruption but never all",
         "add a PodDisruptionBudget with maxUnavailable: 1 selecting the pods", _pdb),
    Rule("DRILL-K8S-003", "R8.4", "a readiness probe on every serving container",
         "add a readinessProbe (e.g. httpGet /readyz)", _readiness),
    Rule("DRILL-K8S-004", "R1.5", "spread across at least 2 zones",
         f"add a topologySpreadConstraint on {ZONE_KEY}, maxSkew 1, whenUnsatisfiable: DoNotSchedule", _zones),
    Rule("DRILL-K8S-005", "R1.3", "HPA minReplicas >= the PDB's minAvailable + 1",
         "raise the HPA's minReplicas or use maxUnavailable: 1 in the PDB", _hpa_min),
    Rule("DRILL-K8S-006", "R1.4", "a rolling update compatible with the PDB",
         "use strategy RollingUpdate with maxUnavailable: 0 and maxSurge: 1", _rolling),
    Rule("DRILL-K8S-007", "R1.3", "CPU and memory requests and limits on every container",
         "set resources.requests and resources.limits for cpu and memory", _resources),
    Rule("DRILL-K8S-008", "R2.2", "no latest or missing image tag",
         "pin a release tag (kustomize images: newTag) or a digest", _tags),
    Rule("DRILL-K8S-009", "R1.4", "graceful shutdown longer than the readiness period",
         "raise terminationGracePeriodSeconds above readiness periodSeconds x failureThreshold", _grace),
)  # fmt: skip


def _exemptions(w: Workload) -> dict[str, str]:
    text = str(((w.obj.get("metadata") or {}).get("annotations") or {}).get(EXEMPT) or "")
    out = {}
    for line in text.splitlines():
        rule, _, why = line.partition(":")
        if rule.strip():
            out[rule.strip()] = why.strip()
    return out


def run_rules(objects: list[dict[str, Any]], origin: Callable[[dict[str, Any]], str]) -> list[Finding]:
    """Every rule over every workload; ``origin(obj)`` names the file an object came from."""
    findings = []
    for w in workloads(objects):
        exempt = _exemptions(w)
        for rule in RULES:
            for problem in rule.check(w):
                why = exempt.get(rule.id)
                if why:
                    findings.append(Finding(rule.id, rule.requirement, "info", w.name, origin(w.obj),
                                            f"exempt ({why}): {problem}"))  # fmt: skip
                elif why is not None:
                    findings.append(Finding(rule.id, rule.requirement, rule.severity, w.name, origin(w.obj),
                                            f"exempted from {rule.id} without a reason (write '{rule.id}: why' in "
                                            f"the {EXEMPT} annotation): {problem}"))  # fmt: skip
                else:
                    findings.append(Finding(rule.id, rule.requirement, rule.severity, w.name, origin(w.obj),
                                            f"{rule.title}: {problem}; fix: {rule.fix}"))  # fmt: skip
    return findings
