"""A fake Kubernetes API server over real HTTP on loopback (``server.FakeKubeAPI``), for testing
drillbit's Kubernetes driver and chaostoolkit-kubernetes where no cluster can run.

Objects live in ``store.Store``; what a deleted pod, an eviction or a patch does behind the API is
the ``hooks.Backend``'s to decide (drillbit's sandbox, or ``sim.Simulator`` in tests); ``rbac.Policy``
enforces a Role/ClusterRole and ``rbac.AuditLog`` records every request.
"""

from drillbit.testing.kubeapi.hooks import Backend, NullBackend
from drillbit.testing.kubeapi.rbac import AuditLog, AuditRecord, Policy
from drillbit.testing.kubeapi.resources import RESOURCES, ResourceType
from drillbit.testing.kubeapi.selectors import FieldSelector, LabelSelector, Query
from drillbit.testing.kubeapi.server import FakeKubeAPI
from drillbit.testing.kubeapi.store import ApiError, Store, WatchEvent

__all__ = [
    "RESOURCES", "ApiError", "AuditLog", "AuditRecord", "Backend", "FakeKubeAPI", "FieldSelector", "LabelSelector",
    "NullBackend", "Policy", "Query", "ResourceType", "Store", "WatchEvent",
]  # fmt: skip
