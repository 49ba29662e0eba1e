"""pytest configuration of this drill project: drillbit's pytest plugin turns tests/resilience into a
resilience gate (``pytest tests/resilience --drill-env sandbox``; README "CI gates").

The plugin is loaded by drillbit's ``pytest11`` entry point; where plugin autoloading is disabled
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), this file loads it. Gates write their run directories under
runs/gate unless ``--drill-out`` says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
    pytest_plugins = ["drillbit.pytest_plugin"]

GATE_OUT = Path("runs/gate")


def pytest_configure(config: pytest.Config) -> None:
    if "--drill-out" not in " ".join(map(str, config.invocation_params.args)):
        config.option.drill_out = GATE_OUT
