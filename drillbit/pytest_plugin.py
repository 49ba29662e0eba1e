"""Resilience gates as pytest tests: drillbit's pytest plugin (entry point ``pytest11``).

Two ways to write a gate. A test that drives drills itself, with the ``drill`` fixture::

    def test_pod_kill_keeps_slo(drill):
        result = drill.run("experiments/pod-kill.yaml", profile="steady")
        assert result.verdict("rto").passed
        assert result.measurements.latency.phases["after"].p95_ms < 100

Or an experiment turned into tests with no body, one per judged SLA (a gate with 5 SLAs shows 5
results, and 5 testcases in pytest's JUnit XML)::

    @pytest.mark.drill(experiment="pod-kill.yaml", slas=["rto", "p95"])
    def test_pod_kill(): ...

PASS is passed, FAIL failed (the message names the requirement, the measured value and the
target), INCONCLUSIVE skipped with its reason (an error with ``--drill-strict``). Each experiment
runs once per session however many SLA tests judge it. ``pytest --drill-suite ci-gate`` collects a
suite from experiments/suites.yaml. The environment (``--drill-env``) is brought up once, on the
first drill, and down when the session ends (also when it is interrupted), unless ``--drill-keep``
or it was already up. Each test's run directory goes into its JUnit properties and the reports are
listed in the terminal summary. Parallel drills against one target falsify both: pytest-xdist is
refused. Ctrl-C during a drill is the drill's: it rolls back, heals, keeps what it measured, and
the session stops.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["DrillRun", "Drills", "SlaVerdict"]

MARKER = "drill"
SLA_PARAM = "drill_sla"
_DRILLS = pytest.StashKey["Drills"]()


@dataclass(frozen=True)
class SlaVerdict:
    """One SLA's verdict of a drill, for assertions."""

    sla: str
    outcome: str  # PASS | FAIL | INCONCLUSIVE
    requirement: str
    text: str
    measured: float | None
    target: float
    op: str
    unit: str
    reason: str | None

    @property
    def passed(self) -> bool:
        return self.outcome == "PASS"

    @property
    def failed(self) -> bool:
        return self.outcome == "FAIL"

    @property
    def inconclusive(self) -> bool:
        return self.outcome == "INCONCLUSIVE"

    def message(self) -> str:
        measured = "not measured" if self.measured is None else f"{self.measured:g} {self.unit}"
        why = f": {self.reason}" if self.reason else ""
        return (f"{self.outcome} {self.requirement} {self.text}: measured {measured}, target {self.op} "
                f"{self.target:g} {self.unit}{why}")  # fmt: skip


@dataclass
class DrillRun:
    """A finished drill: its run directory, exit code, verdicts and measurements."""

    experiment: Path
    run_dir: Path
    exit_code: int
    status: str
    verdicts: dict[str, SlaVerdict]
    error: str | None = None

    def verdict(self, sla: str) -> SlaVerdict:
        if sla not in self.verdicts:
            judged = ", ".join(self.verdicts) or "none"
            raise KeyError(f"{self.experiment.name} judged no SLA {sla!r} (judged: {judged})")
        return self.verdicts[sla]

    @property
    def measurements(self) -> Any:
        from drillbit.core.results import MEASUREMENTS, Measurements, read_model

        return read_model(self.run_dir / MEASUREMENTS, Measurements)

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drillbit", "drillbit resilience gates")
    group.addoption("--drill-env", default=os.environ.get("DRILL_ENV", "sandbox"),
                    help="the target (sandbox, sandbox-k8s or a drill.yaml name); default sandbox")  # fmt: skip
    group.addoption("--drill-out", default="runs/pytest", type=Path, help="where run directories go")
    group.addoption("--drill-sla", default=None, type=Path, help="SLA file (default: the project's slas.yaml)")
    group.addoption("--drill-profile", default=None, help="load profile for every drill (default: each experiment's)")
    group.addoption("--drill-state-dir", default=None, type=Path, help="the environment's state (default .drill)")
    group.addoption("--drill-keep", action="store_true", help="leave the environment up after the session")
    group.addoption("--drill-strict", action="store_true", help="an INCONCLUSIVE SLA is an error, not a skip")
    group.addoption("--drill-suite", default=None, help="collect a suite of experiments/suites.yaml as tests")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(experiment, slas=None, profile=None, **settings): run the "
                            "experiment once, judge each SLA as its own test (the body is not called)")  # fmt: skip
    config.stash[_DRILLS] = Drills(config)



class Drills:
    """The session's drills: one environment, each experiment run once, the runs recorded."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.env: str = config.getoption("--drill-env")
        self.out: Path = config.getoption("--drill-out")
        self.sla: Path | None = config.getoption("--drill-sla")
        self.profile: str | None = config.getoption("--drill-profile")
        self.state_dir: Path | None = config.getoption("--drill-state-dir")
        self.keep: bool = config.getoption("--drill-keep")
        self.started = False
        self.up = False
        self.runs: dict[tuple[str, str | None, str], DrillRun] = {}
        self.interrupted = False

    # -- the environment -----------------------------------------------------------------------
    def _options(self) -> Any:
        from drillbit.runner import RunOptions

        return RunOptions(env=self.env, out=self.out, state_dir=self.state_dir, keep=True, tty=False, say=_say)

    def bring_up(self) -> None:
        from drillbit.runner import bring_up

        if not self.up:
            self.started = bring_up(self._options())
            self.up = True

    def bring_down(self) -> None:
        from drillbit.targets import env_down

        if self.started and not self.keep:
            env_down(self.env, state_dir=self.state_dir, report=_say)
        self.started = self.up = False

    # -- drills --------------------------------------------------------------------------------
    def experiment_path(self, experiment: str | Path) -> Path:
        """As given when it exists, else under the project's experiments/ (a name or a relative path)."""
        from drillbit.core.project import current

        given = Path(experiment)
        if given.exists() or given.is_absolute():
            return given
        return current().find("experiments", *given.parts[1:] if given.parts[0] == "experiments" else given.parts)

    def run(self, experiment: str | Path, *, profile: str | None = None, **settings: Any) -> DrillRun:
        """Run one drill (once per session for the same experiment, profile and settings)."""
        from drillbit.plan import load_plan
        from drillbit.runner import run_drill

        path = self.experiment_path(experiment)
        key = (str(path.resolve()), profile or self.profile, repr(sorted(settings.items())))
        if key in self.runs:
            return self.runs[key]
        if os.environ.get("PYTEST_XDIST_WORKER"):
            raise pytest.UsageError("drillbit: drills cannot run in parallel (pytest-xdist -n): two drills on one "
                                    "target falsify both; run the gate without -n")  # fmt: skip
        if self.interrupted:
            pytest.exit("drillbit: the session was interrupted during a drill", returncode=3)
        plan = load_plan(path, sla_path=self.sla, profile=profile or self.profile)
        if settings:
            plan = dataclasses.replace(plan, settings=plan.settings.model_copy(update=settings))
        self.bring_up()
        result = run_drill(plan, self._options())
        run = _drill_run(path, result)
        self.runs[key] = run
        if result.status.value == "interrupted":
            self.interrupted = True
            pytest.exit(f"drillbit: interrupted during {path.name}: rolled back and healed; kept in {run.run_dir}",
                        returncode=3)  # fmt: skip
        return run


def _drill_run(path: Path, result: Any) -> DrillRun:
    verdicts: dict[str, SlaVerdict] = {}
    for v in result.verdicts.verdicts if result.verdicts else []:
        verdicts[v.sla] = SlaVerdict(v.sla, v.verdict.value, v.requirement, v.requirement_text, v.measured, v.target,
                                     v.op, v.unit, v.reason)  # fmt: skip
    return DrillRun(path, Path(result.run_dir).resolve(), result.exit_code, result.status.value, verdicts, result.error)


def _say(line: str) -> None:
    print(line, flush=True)  # pytest captures it per test (-s shows it live)


@pytest.fixture
def drill(request: pytest.FixtureRequest) -> Iterator[Drills]:
    """Run drills from a test (``drill.run(experiment, profile=...)``); each run directory is
    recorded in the test's JUnit properties."""
    drills: Drills = request.config.stash[_DRILLS]
    before = set(drills.runs)
    yield drills
    for key in [k for k in drills.runs if k not in before]:
        request.node.user_properties.append(("drill_run_dir", str(drills.runs[key].run_dir)))


# -- experiments as tests, one per SLA -------------------------------------------------------------
def _marker_slas(experiment: Path, slas: list[str] | None, sla_file: Path | None) -> list[str]:
    from drillbit.sla import load_sla_file, slas_for

    if slas:
        return list(slas)
    return list(slas_for(load_sla_file(sla_file), experiment.stem, str(sla_file or "slas.yaml")))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    drills: Drills = metafunc.config.stash[_DRILLS]
    experiment = marker.kwargs.get("experiment") or (marker.args[0] if marker.args else None)
    if not experiment:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.drill needs experiment=")
    slas = _marker_slas(drills.experiment_path(experiment), marker.kwargs.get("slas"), drills.sla)
    if SLA_PARAM not in metafunc.fixturenames:
        metafunc.fixturenames.append(SLA_PARAM)
    metafunc.parametrize(SLA_PARAM, slas, ids=slas)


@pytest.fixture
def drill_sla(request: pytest.FixtureRequest) -> str:
    """The SLA a ``@pytest.mark.drill`` test judges (its parameter)."""
    return str(request.param)


def _judge(item: pytest.Item, drills: Drills, experiment: str, sla: str, profile: str | None,
           settings: dict[str, Any]) -> None:  # fmt: skip
    run = drills.run(experiment, profile=profile, **settings)
    item.user_properties.append(("drill_run_dir", str(run.run_dir)))
    if sla not in run.verdicts:
        pytest.fail(f"{run.experiment.name}: no verdict for {sla!r} ({run.error or f'exit {run.exit_code}'}); "
                    f"see {run.run_dir}", pytrace=False)  # fmt: skip
    v = run.verdicts[sla]
    item.user_properties += [("measured", str(v.measured)), ("target", f"{v.op} {v.target:g} {v.unit}")]
    if v.failed:
        pytest.fail(v.message(), pytrace=False)
    if v.inconclusive:
        if item.config.getoption("--drill-strict"):
            pytest.fail(f"{v.message()} (--drill-strict)", pytrace=False)
        pytest.skip(v.message())


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return None
    settings = {k: v for k, v in marker.kwargs.items() if k not in ("experiment", "slas", "profile")}
    experiment = marker.kwargs.get("experiment") or marker.args[0]
    sla = str(pyfuncitem.callspec.params[SLA_PARAM])
    _judge(pyfuncitem, pyfuncitem.config.stash[_DRILLS], experiment, sla, marker.kwargs.get("profile"), settings)
    return True  # the drill is the test: its body is not called


class SlaItem(pytest.Item):
    """One SLA of one experiment of ``--drill-suite``."""

    def __init__(self, *, experiment: str, sla: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.experiment, self.sla = experiment, sla

    def runtest(self) -> None:
        _judge(self, self.config.stash[_DRILLS], self.experiment, self.sla, None, {})

    def reportinfo(self) -> tuple[Path, int, str]:
        return Path(self.experiment), 0, f"{Path(self.experiment).stem}: {self.sla}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    name = config.getoption("--drill-suite")
    if not name:
        return
    from drillbit.suite import load_suite

    drills: Drills = config.stash[_DRILLS]
    _suite, files = load_suite(str(name))
    for f in files:
        for sla in _marker_slas(f, None, drills.sla):
            items.append(SlaItem.from_parent(session, name=f"{f.stem}[{sla}]", experiment=str(f), sla=sla))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drills = session.config.stash.get(_DRILLS, None)
    if drills is not None:
        drills.bring_down()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    drills = config.stash.get(_DRILLS, None)
    if not drills or not drills.runs:
        return
    terminalreporter.section("drillbit")
    for run in drills.runs.values():
        outcome = {0: "PASS", 1: "FAIL", 3: "INCONCLUSIVE"}.get(run.exit_code, f"ERROR (exit {run.exit_code})")
        terminalreporter.write_line(f"{run.experiment.name}: {outcome}  report {run.report}")
