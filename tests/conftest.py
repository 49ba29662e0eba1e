"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from drillbit.targets.sandbox import sandbox
from drillbit.targets.sandbox.sandbox import Sandbox
from tests.atrest import scale_back


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_cluster: against a real Kubernetes cluster (DRILL_TEST_KUBECONFIG), skipped without one; "
                   "a check of that cluster, never counted as coverage of the driver")  # fmt: skip


@pytest.fixture(scope="session")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One real sandbox for the whole test session (start-up costs seconds); tests leave it whole."""
    state = tmp_path_factory.mktemp("sandbox") / ".drill"
    box = sandbox.up(state_dir=state, report=print, monitoring=True)  # alert latency is measured in the drills
    try:
        yield box
    finally:
        sandbox.down(state, report=print)


@pytest.fixture(autouse=True)
def _shared_sandbox_at_rest(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test on the session's sandbox: its replicas back to the minimum (``scale_back``)."""
    yield
    if "sandbox_env" in request.fixturenames:
        scale_back(request.getfixturevalue("sandbox_env"))


#: lines of each log shown under a failed slow test
LOG_TAIL_LINES = 20


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError as err:
        return f"(unreadable: {err})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _logs_of(item: pytest.Item) -> list[tuple[str, Path]]:
    """The logs a failed test's real services wrote: the sandbox's API replicas (one log per
    region: its replicas' lines), and the replica processes a test started itself."""
    found: list[tuple[str, Path]] = []
    values = getattr(item, "funcargs", {})
    for sb in {id(v): v for v in values.values() if isinstance(v, Sandbox)}.values():
        kept = sb.layout.state_dir / "last-sandbox-logs"
        where = f"sandbox logs in {sb.layout.logs} (kept in {kept} once it is down)"
        found += [(where, p) for p in sorted(sb.layout.logs.glob("api-*.log"))]
    tmp = values.get("tmp_path")
    if "replica_factory" in values and isinstance(tmp, Path):
        found += [(f"replica logs in {tmp}", p) for p in sorted(tmp.glob("*.log"))]
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test on real services says where their logs are and shows their last lines."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    for title, path in _logs_of(item):
        report.sections.append((f"{title}: {path.name} (last {LOG_TAIL_LINES} lines)", _tail(path)))
