"""Build step: the wheel ships the repository's drill project as drillbit's defaults.

The top-level folders (experiments/, loadtests/, probes/, reports/, infra/sandbox/, infra/k8s/ and drill.yaml)
are what users read and edit, and the one copy of them. A wheel build copies them into
``drillbit/_project`` so an installed drillbit has its experiments, profiles and sandbox topology
wherever it runs (``drillbit.core.project``); an editable install reads them from the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: the project content shipped in the wheel, relative to the repository root
SHIPPED = ["drill.yaml", "conftest.py", "experiments", "loadtests", "probes", "reports", "infra/sandbox", "infra/k8s",
           "infra/terraform/sandbox", "infra/monitoring", "tests/resilience"]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildWithProject(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        target = Path(self.build_lib) / "drillbit" / "_project"
        shutil.rmtree(target, ignore_errors=True)
        for rel in SHIPPED:
            src, dst = HERE / rel, target / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=IGNORED)
            else:
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildWithProject})
