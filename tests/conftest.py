"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drillbit.targets.sandbox import sandbox
from drillbit.targets.sandbox.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One real sandbox for the whole test session (start-up costs seconds); tests leave it whole."""
    state = tmp_path_factory.mktemp("sandbox") / ".drill"
    box = sandbox.up(state_dir=state, report=print)
    try:
        yield box
    finally:
        sandbox.down(state, report=print)
