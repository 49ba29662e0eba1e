"""Reports and audit evidence from a run directory.

- ``build(run_dir)``: report.html (self-contained), summary.json (schema in ``reports/schemas``),
  junit.xml (one testcase per SLA) and summary.md (CI job summary);
- ``drillbit.reports.evidence.seal`` / ``verify``: a hash-chained, optionally Ed25519-signed MANIFEST;
- ``drillbit.reports.trend`` / ``drillbit.reports.compare``: drills side by side and over time.

``build`` is imported lazily (it pulls in matplotlib), so ``drill`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drillbit.reports.builder import build, build_summary

__all__ = ["build", "build_summary"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("drillbit.reports.builder"), name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
