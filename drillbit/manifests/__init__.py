"""The deployment manifests under test: render them (kustomize), check them (Kubernetes schemas,
checkov, drillbit's resilience rules) and record exactly what a drill exercised."""

from drillbit.manifests.check import CheckResult, RecordedManifests, check_manifests, record_manifests, write_outputs
from drillbit.manifests.render import Rendered, render
from drillbit.manifests.rules import RULES, Finding

__all__ = [
    "RULES",
    "CheckResult",
    "Finding",
    "RecordedManifests",
    "Rendered",
    "check_manifests",
    "record_manifests",
    "render",
    "write_outputs",
]
