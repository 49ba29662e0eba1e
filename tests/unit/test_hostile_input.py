"""Hostile and careless input (issue 13), one table: each input, its exit code and its one-line message.

Every case runs through ``drillbit.cli.main`` on real files. A user error is exit 2 and exactly one
line on stderr naming the file or option; an accepted input prints what it did on stdout. No case
may print a traceback, hang (FIFOs: each case is time-bounded), clobber what it was pointed at, or
leave a ``.tmp`` behind. Secrets (the canary) never appear in anything printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbit import reports
from drillbit.cli import main
from tests.unit.rundirs import RunSpec, write_run_dir

ROOT = Path(__file__).resolve().parents[2]
POD_KILL = ROOT / "experiments" / "pod-kill.yaml"
CANARY = "canary-s3cr3t-7f1d"


@dataclass
class Ctx:
    """What a case's set-up may use: a scratch directory and fresh copies of built run directories."""

    tmp: Path
    template: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, name: str = "20251009T084640Z-pod-kill", parent: str = "runs") -> Path:
        d = self.tmp / parent / name
        shutil.copytree(self.template, d, symlinks=True)
        return d

    def file(self, name: str, content: str | bytes) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        return p

    def experiment(self, name: str = "exp.yaml", **changes: Any) -> Path:
        exp = yaml.safe_load(POD_KILL.read_text())
        for key, value in changes.items():
            exp[key.replace("_", "-") if key == "steady_state_hypothesis" else key] = value
        return self.file(name, yaml.safe_dump(exp))

    def fifo(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        os.mkfifo(path)
        return path


Setup = Callable[[Ctx], list[str]]
Check = Callable[[Ctx], None]


@dataclass(frozen=True)
class Case:
    id: str
    setup: Setup
    code: int
    pattern: str  # regex the one stderr line (exit 2) or stdout (accepted) must match
    check: Check | None = None


def _method(**arguments: Any) -> list[dict[str, Any]]:
    provider = {"type": "python", "module": "drillbit.faults", "func": "kill_replicas", "arguments": arguments}
    return [{"type": "action", "name": "kill", "provider": provider}]


def _fault(func: str, **arguments: Any) -> list[dict[str, Any]]:
    provider = {"type": "python", "module": "drillbit.faults", "func": func, "arguments": arguments}
    return [{"type": "action", "name": func, "provider": provider}]


def _deep(n: int = 5000) -> str:
    return "[" * n + "]" * n


def _drill_settings(**settings: Any) -> list[dict[str, Any]]:
    return [{"name": "drillbit", **settings}]


def _sla_file(ctx: Ctx, target: str = "900", default: str = "[rto]", extra: str = "") -> Path:
    return ctx.file("sla.yaml", "slas:\n  rto: {metric: rto_s, op: '<', target: " + target
                    + ", requirement: R9.4, text: RTO}\n" + extra + "default: " + default + "\n")


def _manifest_field(run_dir: Path, key: str, value: Any) -> None:
    doc = json.loads((run_dir / "MANIFEST").read_text())
    doc[key] = value
    (run_dir / "MANIFEST").write_text(json.dumps(doc))


def _manifest_broken(key: str, value: Any) -> Setup:
    def setup(ctx: Ctx) -> list[str]:
        d = ctx.run()
        assert main(["seal", str(d)]) == 0
        _manifest_field(d, key, value)
        return ["verify", str(d)]

    return setup


def _sealed_pair(ctx: Ctx) -> tuple[Path, Path]:
    first = ctx.run("20251009T000000Z-pod-kill")
    second = ctx.run("20251010T000000Z-pod-kill")
    run_json = json.loads((second / "run.json").read_text())
    run_json["started_at"] += 86_400
    (second / "run.json").write_text(json.dumps(run_json))
    assert main(["seal", str(first)]) == 0
    assert main(["seal", str(second)]) == 0
    return first, second


def _still_char_device(path: str) -> Check:
    return lambda ctx: _assert(stat.S_ISCHR(os.stat(path).st_mode), f"{path} is no longer a device")


def _assert(ok: bool, what: str) -> None:
    assert ok, what


def _no_tmp_left(ctx: Ctx) -> None:
    left = [p for p in ctx.tmp.rglob("*.tmp")]
    assert not left, left


def _unchanged(name: str, content: str) -> Check:
    return lambda ctx: _assert((ctx.tmp / name).read_text() == content, f"{name} was overwritten")


def _summary_problems(pattern: str) -> Check:
    def check(ctx: Ctx) -> None:
        problems = json.loads((ctx.tmp / "runs" / "20251009T084640Z-pod-kill" / "summary.json").read_text())["problems"]
        assert any(re.search(pattern, p) for p in problems), problems

    return check


def _trend_out(ctx: Ctx, out: str) -> list[str]:
    return ["report", "trend", str(ctx.run()), "--out", out]


def _compare(ctx: Ctx, *extra: str) -> list[str]:
    return ["report", "compare", str(ctx.run("a")), str(ctx.run("b")), *extra]


def _symlink_out(ctx: Ctx) -> list[str]:
    victim = ctx.file("victim.txt", "keep me")
    link = ctx.tmp / "link.html"
    link.symlink_to(victim)
    return _trend_out(ctx, str(link))


def _dir_out(ctx: Ctx) -> list[str]:
    (ctx.tmp / "outdir").mkdir()
    return _compare(ctx, "--out", str(ctx.tmp / "outdir"))


def _report_html_symlink(ctx: Ctx) -> list[str]:
    d = ctx.run()
    ctx.file("victim.txt", "keep me")
    (d / "report.html").unlink()
    (d / "report.html").symlink_to(ctx.tmp / "victim.txt")
    return ["report", "build", str(d)]


def _manifest_is_dir(ctx: Ctx) -> list[str]:
    d = ctx.run()
    (d / "MANIFEST").mkdir()
    return ["seal", str(d)]


def _fifo_in_run(rel: str, command: str) -> Setup:
    def setup(ctx: Ctx) -> list[str]:
        d = ctx.run()
        ctx.fifo(d / rel)
        return [command, str(d)] if command == "seal" else ["report", "build", str(d)]

    return setup


def _symlink_loop(ctx: Ctx) -> list[str]:
    d = ctx.run()
    (d / "loop").symlink_to(d / "loop")
    return ["seal", str(d)]


def _experiment_secret_as_cooldown(ctx: Ctx) -> list[str]:
    p = ctx.experiment(secrets={"db": {"password": CANARY}}, extensions=_drill_settings(cooldown_s=CANARY))
    return ["run", str(p), "--dry-run"]


def _env_secret_as_option(ctx: Ctx) -> list[str]:
    ctx.env["DRILL_DB_PASSWORD"] = CANARY
    return ["observe", "--url", "http://127.0.0.1:9/", "--cooldown", CANARY]


def _env_secret_as_setting(ctx: Ctx) -> list[str]:
    ctx.env["DRILL_DB_PASSWORD"] = CANARY
    return ["run", str(ctx.experiment(extensions=_drill_settings(baseline_s=CANARY))), "--dry-run"]


def _url_secret(ctx: Ctx) -> list[str]:
    return ["observe", "--url", f"http://127.0.0.1:9/healthz?token={CANARY}#{CANARY}x", "--duration", "5s",
            "--out", str(ctx.tmp / "runs"), "--state-dir", str(ctx.tmp / "state")]


def _no_lock_left(ctx: Ctx) -> None:
    assert not list((ctx.tmp / "state").glob("*.lock")), list((ctx.tmp / "state").iterdir())


def _url_secret_in_error(ctx: Ctx) -> list[str]:
    return ["observe", "--url", f"ftp://u:{CANARY}@h/?token={CANARY}"]


def _dry(ctx: Ctx, **changes: Any) -> list[str]:
    return ["run", str(ctx.experiment(**changes)), "--dry-run"]


def _kube_without_context(ctx: Ctx) -> list[str]:
    ctx.env["DRILL_CONFIG"] = str(ctx.file("drill.yaml", "targets:\n  prod: {kind: kubernetes, namespace: t}\n"))
    return ["run", str(POD_KILL), "--env", "prod", "--dry-run"]


def _drill_config_binary(ctx: Ctx) -> list[str]:
    ctx.env["DRILL_CONFIG"] = str(ctx.file("drill.yaml", b"targets:\n  \xff\xfe: {}\n"))
    return ["run", str(POD_KILL), "--dry-run"]


def _drill_config_dup(ctx: Ctx) -> list[str]:
    ctx.env["DRILL_CONFIG"] = str(ctx.file("drill.yaml", "targets: {}\ntargets: {}\n"))
    return ["run", str(POD_KILL), "--dry-run"]


def _seal_unsealed_previous(ctx: Ctx, *extra: str) -> list[str]:
    first = ctx.run("20251009T000000Z-pod-kill")
    (first / "MANIFEST").write_text("{not json")
    second = ctx.run("20251010T000000Z-pod-kill")
    run_json = json.loads((second / "run.json").read_text())
    run_json["started_at"] += 86_400
    (second / "run.json").write_text(json.dumps(run_json))
    return ["seal", str(second), *extra]


def _verify_previous_deleted(ctx: Ctx, *extra: str) -> list[str]:
    first, second = _sealed_pair(ctx)
    shutil.rmtree(first)
    return ["verify", str(second), *extra]


def _verify_symlinked_folder(ctx: Ctx) -> list[str]:
    d = ctx.run()
    assert main(["seal", str(d)]) == 0
    (ctx.tmp / "elsewhere").mkdir()
    (d / "extra").symlink_to(ctx.tmp / "elsewhere", target_is_directory=True)
    return ["verify", str(d)]


def _nan_latency(ctx: Ctx) -> list[str]:
    d = ctx.run()
    text = (d / "measurements.json").read_text()
    doc = json.loads(text)
    phase = next(iter(doc["latency"]["phases"]))
    doc["latency"]["phases"][phase]["p95_ms"] = float("nan")
    (d / "measurements.json").write_text(json.dumps(doc))
    return ["report", "build", str(d)]


def _deep_run_file(name: str) -> Setup:
    def setup(ctx: Ctx) -> list[str]:
        d = ctx.run()
        (d / name).write_text(_deep())
        return ["report", "build", str(d)]

    return setup


def _different_experiments(ctx: Ctx, *extra: str) -> list[str]:
    a, b = ctx.run("a"), ctx.run("b")
    for d in (b,):
        summary = json.loads((d / "summary.json").read_text())
        summary["run"]["experiment"]["path"] = "experiments/region-loss.yaml"
        (d / "summary.json").write_text(json.dumps(summary))
    return ["report", "compare", str(a), str(b), *extra]


def _in_dir(ctx: Ctx) -> list[str]:
    d = ctx.tmp / "not-a-run"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    return ["seal", str(d)]


ONE_LINE = r"^drill: error: "

CASES = [
    # -- destroys files: every output refuses what is not a regular file, leaves no .tmp --------------
    Case("trend-out-dev-null", lambda c: _trend_out(c, "/dev/null"), 2, r"/dev/null: is a character device, not a "
         r"regular file: drillbit writes only regular files", _still_char_device("/dev/null")),
    Case("compare-out-dev-null", lambda c: _compare(c, "--out", "/dev/null"), 2, r"/dev/null: is a character device",
         _still_char_device("/dev/null")),
    Case("trend-out-symlink", _symlink_out, 2, r"link\.html: is a symlink", _unchanged("victim.txt", "keep me")),
    Case("compare-out-directory", _dir_out, 2, r"outdir: is a directory, not a regular file", _no_tmp_left),
    Case("compare-out-fifo", lambda c: _compare(c, "--out", str(c.fifo(c.tmp / "pipe"))), 2, r"pipe: is a FIFO"),
    Case("trend-out-proc-self", lambda c: _trend_out(c, "/proc/self"), 2, r"/proc/self: is a symlink"),
    Case("trend-out-missing-parent", lambda c: _trend_out(c, str(c.tmp / "nope" / "t.html")), 2,
         r"t\.html: its directory .*nope does not exist: create it"),
    Case("trend-out-regular-file-replaced", lambda c: _trend_out(c, str(c.file("old.html", "old"))), 0,
         r"old\.html", _no_tmp_left),
    Case("build-report-html-symlink", _report_html_symlink, 2, r"report\.html: is a symlink",
         _unchanged("victim.txt", "keep me")),
    Case("seal-manifest-is-directory", _manifest_is_dir, 2, r"MANIFEST: is a directory", _no_tmp_left),
    Case("run-out-is-a-file", lambda c: ["run", str(POD_KILL), "--out", str(c.file("f", "x"))], 2,
         r"--out.*is not a directory"),
    Case("run-out-dev-null", lambda c: ["run", str(POD_KILL), "--out", "/dev/null"], 2, r"--out.*is not a directory"),
    # -- leaks secrets -------------------------------------------------------------------------------
    Case("experiment-secret-echoed-as-cooldown", _experiment_secret_as_cooldown, 2,
         r"extensions\[drillbit\]\.cooldown_s: .*\(got '\*\*\*'\)"),
    Case("env-secret-echoed-as-option", _env_secret_as_option, 2, r"--cooldown': Input should be a valid number"),
    Case("env-secret-echoed-as-setting", _env_secret_as_setting, 2, r"baseline_s: .*\(got '\*\*\*'\)"),
    Case("url-query-and-fragment-in-error", _url_secret, 4, r"--url: nothing answers at "
         r"http://127\.0\.0\.1:9/healthz\?token=\*\*\*#\*\*\*", _no_lock_left),
    Case("url-userinfo-in-error", _url_secret_in_error, 2, r"--url: 'ftp://u:\*\*\*@h/\?token=\*\*\*' is not an "
         r"http\(s\) URL"),
    # -- hangs: a FIFO in a run directory is skipped and reported, never opened ------------------------
    Case("seal-fifo-in-run", _fifo_in_run("samples/extra.fifo", "seal"), 0, r"1 entries skipped"),
    Case("build-fifo-as-events", _fifo_in_run("events.jsonl", "build"), 0, r"report\.html",
         _summary_problems(r"events\.jsonl: a FIFO, not a regular file: skipped")),
    Case("build-fifo-as-samples", _fifo_in_run("samples/availability.parquet", "build"), 0, r"report\.html",
         _summary_problems(r"samples/availability\.parquet: a FIFO")),
    Case("build-fifo-in-requests", _fifo_in_run("requests/worker-9.parquet", "build"), 0, r"report\.html"),
    Case("build-fifo-as-run-json", _fifo_in_run("run.json", "build"), 0, r"report\.html",
         _summary_problems(r"run\.json: a FIFO")),
    # -- user errors that were "internal error", exit 4 ------------------------------------------------
    Case("experiment-binary", lambda c: ["run", str(c.file("b.yaml", b"\x89PNG\x00\xff\xfe")), "--dry-run"], 2,
         r"b\.yaml: not UTF-8 text \(byte \d+\): save it as UTF-8"),
    Case("sla-non-utf8", lambda c: ["run", str(POD_KILL), "--sla", str(c.file("s.yaml", b"slas: \xe9\n")),
                                    "--dry-run"], 2, r"s\.yaml: not UTF-8 text"),
    Case("profile-non-utf8", lambda c: ["run", str(POD_KILL), "--profile", str(c.file("p.yaml", b"name: \xe9\n")),
                                        "--dry-run"], 2, r"p\.yaml: not UTF-8 text"),
    Case("drill-config-non-utf8", _drill_config_binary, 2, r"drill\.yaml: not UTF-8 text"),
    Case("experiment-is-a-directory", lambda c: ["run", str(c.tmp), "--dry-run"], 2,
         r"is a directory, not a regular file: pass a regular file"),
    Case("profile-empty", lambda c: ["run", str(POD_KILL), "--profile", "", "--dry-run"], 2,
         r"--profile: profile: empty name: use one of"),
    Case("profile-is-a-directory", lambda c: ["run", str(POD_KILL), "--profile", str(c.tmp), "--dry-run"], 2,
         r"--profile: .*is a directory"),
    Case("experiment-invalid-json", lambda c: ["run", str(c.file("e.json", '{"title": ')), "--dry-run"], 2,
         r"e\.json: line 1, column \d+: not valid JSON"),
    Case("experiment-deep-yaml", lambda c: ["run", str(c.file("deep.yaml", "a: " + _deep())), "--dry-run"], 2,
         r"deep\.yaml: nested deeper than 64 levels"),
    Case("experiment-deep-json", lambda c: ["run", str(c.file("deep.json", _deep())), "--dry-run"], 2,
         r"deep\.json: nested deeper than 64 levels"),
    Case("build-deep-measurements", _deep_run_file("measurements.json"), 0, r"report\.html",
         _summary_problems(r"measurements\.json: unreadable \(.*nested deeper")),
    Case("build-deep-run-json", _deep_run_file("run.json"), 0, r"report\.html",
         _summary_problems(r"run\.json: unreadable \(.*nested deeper")),
    Case("extensions-as-mapping", lambda c: _dry(c, extensions={"name": "drillbit"}), 2,
         r"extensions: Input should be a valid list"),
    Case("provider-as-string", lambda c: _dry(c, method=[{"type": "action", "name": "x", "provider": "boom"}]), 2,
         r"method\[0\]\.provider: expected a mapping \(got 'boom'\)"),
    Case("arguments-as-list", lambda c: _dry(c, method=[{"type": "action", "name": "x", "provider": {
        "type": "python", "module": "drillbit.faults", "func": "kill_replicas", "arguments": [1]}}]), 2,
         r"method\[0\]\.provider\.arguments: Input should be a valid dictionary"),
    Case("func-as-list", lambda c: _dry(c, method=[{"type": "action", "name": "x", "provider": {
        "type": "python", "module": "drillbit.faults", "func": ["kill_replicas"]}}]), 2,
         r"method\[0\]\.provider\.func: Input should be a valid string"),
    Case("manifest-files-a-string", _manifest_broken("files", "all"), 2,
         r"MANIFEST: unreadable MANIFEST: files: Input should be a valid dictionary"),
    Case("manifest-previous-a-string", _manifest_broken("previous", "x"), 2,
         r"MANIFEST: unreadable MANIFEST: previous: expected a mapping \(got 'x'\)"),
    Case("seal-symlink-loop-in-run", _symlink_loop, 0, r"1 entries skipped"),
    Case("configuration-env-without-key", lambda c: _dry(c, configuration={"t": {"type": "env", "key": None}}), 2,
         r"configuration\.t\.key: Input should be a valid string"),
    Case("configuration-env-default-not-an-int", lambda c: _dry(c, configuration={"t": {
        "type": "env", "key": "DRILL_UNSET_13", "default": "abc", "env_var_type": "int"}}), 2,
         r"chaostoolkit: the experiment cannot be validated \(ValueError"),
    Case("mark-state-dir-is-a-file", lambda c: ["mark", "x", "--state-dir", str(c.file("f", "x"))], 2,
         r"--state-dir.*is not a directory: pass a directory"),
    # -- wrong input that was accepted -------------------------------------------------------------
    Case("count-one-as-word", lambda c: _dry(c, method=_method(count="one")), 2,
         r"method\[0\]\.provider\.arguments\.count: Input should be a valid integer \(got 'one'\)"),
    Case("count-negative", lambda c: _dry(c, method=_method(count=-3)), 2,
         r"arguments\.count: Input should be greater than or equal to 1 \(got -3\)"),
    Case("percent-250", lambda c: _dry(c, method=_method(percent=250)), 2,
         r"arguments\.percent: Input should be less than or equal to 100"),
    Case("count-and-percent", lambda c: _dry(c, method=_method(count=1, percent=5)), 2,
         r"method\[0\]\.provider\.arguments: give count .* or percent .*, exactly one"),
    Case("failover-mode-nuke-it", lambda c: _dry(c, method=_fault("fail_over_database", mode="nuke-it")), 2,
         r"arguments\.mode: Input should be 'kill-node', 'kill-postgres', 'switchover', 'failover', 'global' or "
         r"'global-unplanned' \(got 'nuke-it'\)"),
    Case("region-zz", lambda c: _dry(c, method=_fault("lose_region", region="region-zz"),
                                     rollbacks=_fault("restore_region", region="region-a")), 2,
         r"method\[0\]\.provider\.arguments\.region: unknown region 'region-zz': use one of region-a, region-b"),
    Case("locustfile-outside-project", lambda c: _dry(c, extensions=_drill_settings(locustfile="../../etc/passwd")),
         2, r"extensions\[drillbit\]\.locustfile: '\.\./\.\./etc/passwd' leads outside the drill project"),
    Case("profile-outside-project", lambda c: _dry(c, extensions=_drill_settings(profile="/etc/passwd")),
         2, r"extensions\[drillbit\]\.profile: '/etc/passwd' leads outside the drill project"),
    Case("pauses-after-negative", lambda c: _dry(c, method=[{**_method(count=1)[0], "pauses": {"after": -5}}]), 2,
         r"method\[0\]\.pauses\.after: Input should be greater than or equal to 0"),
    Case("kubernetes-without-context", _kube_without_context, 2,
         r"drill\.yaml: targets\.prod\.context: required field is missing: add it"),
    Case("sla-target-negative", lambda c: ["run", str(POD_KILL), "--sla", str(_sla_file(c, "-900")), "--dry-run"], 2,
         r"slas\.rto\.target: Input should be greater than or equal to 0"),
    Case("sla-target-nan", lambda c: ["run", str(POD_KILL), "--sla", str(_sla_file(c, ".nan")), "--dry-run"], 2,
         r"slas\.rto\.target: Input should be a finite number"),
    Case("sla-target-inf", lambda c: ["run", str(POD_KILL), "--sla", str(_sla_file(c, ".inf")), "--dry-run"], 2,
         r"slas\.rto\.target: Input should be a finite number"),
    Case("sla-percent-over-100", lambda c: ["run", str(POD_KILL), "--sla", str(c.file("s.yaml", (
        "slas:\n  a: {metric: availability_percent, op: '>=', target: 150, requirement: E1, text: t}\n"
        "default: [a]\n"))), "--dry-run"], 2, r"target: 150 is not a percent"),
    Case("sla-duplicate-default", lambda c: ["run", str(POD_KILL), "--sla", str(_sla_file(
        c, "900", "[rto]\ndefault: []")), "--dry-run"], 2, r"sla\.yaml: line 4: duplicate key 'default' "
         r"\(first at line 3\): keep one of them"),
    Case("sla-none-to-judge", lambda c: ["run", str(POD_KILL), "--sla", str(_sla_file(c, "900", "[]")), "--dry-run"],
         2, r"no SLA applies to experiment 'pod-kill', so nothing would be judged"),
    Case("experiment-duplicate-key", lambda c: ["run", str(c.file("d.yaml", POD_KILL.read_text()
                                                                  + "title: again\n")), "--dry-run"], 2,
         r"d\.yaml: line \d+: duplicate key 'title'"),
    Case("drill-config-duplicate-key", _drill_config_dup, 2, r"drill\.yaml: line 2: duplicate key 'targets'"),
    Case("mark-empty-label", lambda c: ["mark", "  ", "--run", str(c.run())], 2, r"drill mark: LABEL is empty"),
    Case("seal-folder-without-run-json", _in_dir, 2, r"not-a-run: not a run directory \(no run\.json\)"),
    Case("compare-limit-nan", lambda c: _compare(c, "--max-p95-regression-pct", "nan"), 2,
         r"--max-p95-regression-pct: nan is not a finite number >= 0"),
    Case("compare-limit-inf", lambda c: _compare(c, "--max-p95-regression-pct", "inf"), 2,
         r"--max-p95-regression-pct: inf is not a finite number"),
    Case("compare-limit-1e309", lambda c: _compare(c, "--max-p95-regression-pct", "1e309"), 2,
         r"--max-p95-regression-pct: inf is not a finite number"),
    Case("compare-limit-negative", lambda c: _compare(c, "--max-p95-regression-pct", "-1"), 2,
         r"--max-p95-regression-pct: -1\.0 is not a finite number >= 0"),
    Case("compare-different-experiments", _different_experiments, 2, r"drill report compare: the baseline ran "
         r"'pod-kill', the candidate 'region-loss': compare runs of one experiment, or pass --allow-different"),
    Case("compare-different-allowed", lambda c: _different_experiments(c, "--allow-different"), 0, r"verdict: OK"),
    Case("env-kill-replicas-count-negative", lambda c: ["env", "kill-replicas", "--count", "-3"], 2,
         r"drill env kill-replicas: --count: Input should be greater than or equal to 1"),
    Case("env-failover-mode-unknown", lambda c: ["env", "failover", "--mode", "nuke-it"], 2, r"--mode: Input should "
         r"be 'kill-node'"),
    # -- tamper detection ---------------------------------------------------------------------------
    Case("verify-previous-deleted", _verify_previous_deleted, 1, r"evidence does not verify \(1 problem"),
    Case("verify-previous-deleted-chain-start", lambda c: _verify_previous_deleted(c, "--allow-chain-start"), 0,
         r": intact"),
    Case("verify-symlinked-folder-added", _verify_symlinked_folder, 1, r"evidence does not verify"),
    Case("seal-previous-manifest-unreadable", _seal_unsealed_previous, 2, r"the previous run's MANIFEST is "
         r"unreadable .*: restore it, or pass --allow-chain-start"),
    Case("seal-previous-unreadable-chain-start", lambda c: _seal_unsealed_previous(c, "--allow-chain-start"), 0,
         r"new chain \(--allow-chain-start\)"),
    # -- messages --------------------------------------------------------------------------------------
    Case("experiment-yaml-syntax-one-line", lambda c: ["run", str(c.file("s.yaml", "title: [\n  - a\n b: c\n")),
                                                       "--dry-run"], 2, r"s\.yaml: line \d+: not valid YAML"),
    Case("bad-profile-in-extensions-named-there", lambda c: _dry(c, extensions=_drill_settings(profile="tsunami")), 2,
         r"exp\.yaml: extensions\[drillbit\]\.profile: .*no such profile"),
    Case("drill-without-command", lambda c: [], 2, r"drill: give a command \(listed above\)"),
    Case("env-without-command", lambda c: ["env"], 2, r"drill env: give a command"),
    Case("report-without-command", lambda c: ["report"], 2, r"drill report: give a command"),
    Case("env-status-state-dir-is-a-file", lambda c: ["env", "status", "--state-dir", str(c.file("f", "x"))], 2,
         r"--state-dir: .*is not a directory"),
    Case("nan-latency-said-in-summary", _nan_latency, 0, r"summary\.json",
         _summary_problems(r"latency\.phases\.\w+\.p95_ms is nan \(not a finite number\): shown as null")),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = write_run_dir(tmp_path_factory.mktemp("template"), RunSpec(kind="pass"))
    reports.build(d)
    return d


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)  # the drill project: paths in experiments stay inside it
    monkeypatch.delenv("DRILL_CONFIG", raising=False)
    ctx = Ctx(tmp_path, template)
    argv = case.setup(ctx)
    for key, value in ctx.env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    needs_state = argv[:1] == ["env"] and len(argv) > 1 and "--state-dir" not in argv
    code = main([*argv, "--state-dir", str(tmp_path / "state")] if needs_state else argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert CANARY not in out + err, "a secret reached the output"
    assert code == case.code, f"exit {code}: {err or out}"
    if case.code in (2, 4):
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert re.match(ONE_LINE, lines[0]), lines[0]
        assert re.search(case.pattern, lines[0]), lines[0]
    else:  # accepted (0) or a verdict (1): what it did on stdout, a verdict's summary line on stderr
        assert re.search(case.pattern, out + err, re.M), out + err
    if case.check is not None:
        case.check(ctx)


def test_the_table_covers_every_case_of_the_issue() -> None:
    assert len(CASES) >= 70 and len({c.id for c in CASES}) == len(CASES)


def test_help_with_columns_0_is_drawn() -> None:
    proc = subprocess.run([sys.executable, "-m", "drillbit.cli", "--help"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "0"})
    assert proc.returncode == 0 and "Usage" in proc.stdout and "seal" in proc.stdout, proc.stdout


def test_a_missing_suites_file_names_no_option_that_does_not_exist(tmp_path: Path) -> None:
    from drillbit.core.errors import ConfigError
    from drillbit.suite import load_suite

    with pytest.raises(ConfigError) as err:
        load_suite("x", tmp_path / "suites.yaml")
    assert "--suites" not in str(err.value) and "no such suites file" in str(err.value)


def test_a_fifo_run_dir_does_not_hang_a_separate_process(tmp_path: Path) -> None:
    """The same as the table's FIFO cases, in a process of its own: a hang is a timeout, not a stuck suite."""
    d = write_run_dir(tmp_path, RunSpec(kind="pass"))
    (d / "journal.json").unlink()
    os.mkfifo(d / "journal.json")
    for args in (["report", "build", str(d)], ["seal", str(d)], ["verify", str(d)]):
        proc = subprocess.run([sys.executable, "-m", "drillbit.cli", *args], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
