#!/usr/bin/env python3
"""What the CI workflows read out of drillbit run directories (standard library only).

    drill_ci.py runs ROOT      the run directories under ROOT (those holding run.json), oldest first
                               by run.json's started_at: the order to seal them in (each MANIFEST
                               chains to the one sealed before it)
    drill_ci.py report ROOT    each run's summary.md into $GITHUB_STEP_SUMMARY, a ::error annotation
                               per FAILED SLA (and per run without a verdict), a ::warning per
                               INCONCLUSIVE one; outcome=PASS|FAIL|INCONCLUSIVE|ERROR, runs=N,
                               failed=N and report=<markdown> into $GITHUB_OUTPUT
    drill_ci.py machine        the runner's description (JSON) to file beside benchmark figures

The files are drillbit's run-directory contract (drillbit.core.results): verdicts.json is a
VerdictSet {outcome, exit_code, verdicts: [{sla, requirement, requirement_text, op, target, unit,
measured, verdict, how, reason}], inconclusive_reasons}. Everything read here is data, never code:
it reaches the runner only escaped as a workflow-command value, or as Markdown in a summary.
Always exits 0 once it has read what there is (the job fails on the drill's own exit code).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import sys
from pathlib import Path
from typing import Any

#: GitHub truncates a step summary above 1 MiB: stop adding runs' summaries well before it
SUMMARY_BUDGET = 900_000
#: worst first: the outcome of several runs is the worst of theirs
SEVERITY = ["ERROR", "FAIL", "INCONCLUSIVE", "PASS"]


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, title: str, message: str, file: str | None = None) -> str:
    """A workflow command (``::error title=...::message``), every value escaped: one line, always."""
    props = [f"title={_escape_property(title)}"]
    if file:
        props.insert(0, f"file={_escape_property(file)}")
    return f"::{level} {','.join(props)}::{_escape_data(message)}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return {"__unreadable__": f"{type(err).__name__}: {err}"}


def run_dirs(root: Path) -> list[Path]:
    """Directories under ``root`` holding run.json as a regular file (never a re-analysis under analysis/),
    oldest first by run.json's ``started_at``, then by name."""
    found = []
    for run_json in root.rglob("run.json"):
        d = run_json.parent
        if run_json.is_symlink() or not run_json.is_file() or "analysis" in d.relative_to(root).parts:
            continue
        info = _read_json(run_json)
        started = info.get("started_at") if isinstance(info, dict) else None
        key = float(started) if isinstance(started, int | float) and not isinstance(started, bool) else float("inf")
        found.append((key, str(d), d))
    return [d for _, _, d in sorted(found)]


def _number(x: Any) -> str:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return "not measured"
    return f"{x:g}"


def _verdict_line(v: dict[str, Any]) -> str:
    """``R9.4 RTO < 15 min: measured 1200 s, target < 900 s`` (and the reason, if any)."""
    unit = str(v.get("unit", ""))
    measured = _number(v.get("measured"))
    if measured != "not measured":
        measured = f"{measured} {unit}".strip()
    text = (f"{v.get('requirement', '?')} {v.get('requirement_text', '')}".strip()
            + f": measured {measured}, target {v.get('op', '')} {_number(v.get('target'))} {unit}".rstrip())
    return text + (f" ({v['reason']})" if v.get("reason") else "")


def judge_run(d: Path, root: Path) -> tuple[str, list[str], list[str]]:
    """(the run's outcome, annotation lines, Markdown lines for a report) from its verdicts.json."""
    name = str(d.relative_to(root)) if d != root else d.name
    info = _read_json(d / "run.json")
    experiment = None
    if isinstance(info, dict) and isinstance(info.get("experiment"), dict):
        path = info["experiment"].get("path")
        experiment = path if isinstance(path, str) and path and not Path(path).is_absolute() else None
    doc = _read_json(d / "verdicts.json")
    if not isinstance(doc, dict) or "__unreadable__" in doc or not isinstance(doc.get("verdicts"), list):
        if doc is None:
            why = "no verdicts.json: the drill did not conclude (interrupted, crashed or an environment error)"
        else:
            problem = doc.get("__unreadable__", "not a VerdictSet") if isinstance(doc, dict) else "not a VerdictSet"
            why = f"verdicts.json unreadable: {problem}"
        return "ERROR", [annotation("error", f"drill {name}: no verdict", why, experiment)], [f"- `{name}`: {why}"]
    outcome = str(doc.get("outcome", "ERROR")).upper()
    outcome = outcome if outcome in SEVERITY else "ERROR"
    notes: list[str] = []
    lines: list[str] = []
    for v in doc["verdicts"]:
        if not isinstance(v, dict):
            continue
        verdict = str(v.get("verdict", "")).upper()
        if verdict == "FAIL":
            notes.append(annotation("error", f"SLA {v.get('sla', '?')} FAILED ({name})", _verdict_line(v), experiment))
            lines.append(f"- `{name}` **FAIL** {_verdict_line(v)}")
        elif verdict == "INCONCLUSIVE":
            notes.append(annotation("warning", f"SLA {v.get('sla', '?')} INCONCLUSIVE ({name})", _verdict_line(v),
                                    experiment))
            lines.append(f"- `{name}` INCONCLUSIVE {_verdict_line(v)}")
    for reason in doc.get("inconclusive_reasons") or []:
        notes.append(annotation("warning", f"drill {name} INCONCLUSIVE", str(reason), experiment))
        lines.append(f"- `{name}` INCONCLUSIVE: {reason}")
    if not lines:
        lines.append(f"- `{name}` {outcome}")
    return outcome, notes, lines


def _append(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def report(root: Path) -> int:
    dirs = run_dirs(root) if root.is_dir() else []
    outcomes: list[str] = []
    report_lines: list[str] = []
    summary: list[str] = []
    used = 0
    for d in dirs:
        outcome, notes, lines = judge_run(d, root)
        outcomes.append(outcome)
        report_lines += lines
        for note in notes:
            print(note)
        md = d / "summary.md"
        text = md.read_text(encoding="utf-8", errors="replace") if md.is_file() and not md.is_symlink() else (
            f"## drillbit: `{d.name}` — no summary.md (the drill did not finish its reports)\n")
        if used + len(text) > SUMMARY_BUDGET:
            text = f"\n_{d.name}: summary left out (the job summary is full); it is in the uploaded run directory._\n"
        used += len(text)
        summary.append(text.rstrip("\n") + "\n\n")
    if not dirs:
        outcomes.append("ERROR")
        why = f"no run directory under {root}: no drill ran (see the log of the drill step)"
        print(annotation("error", "no drill ran", why))
        report_lines.append(f"- {why}")
        summary.append(f"## drillbit: no run\n\n{why}\n")
    overall = min(outcomes, key=SEVERITY.index)
    _append(os.environ.get("GITHUB_STEP_SUMMARY"), "".join(summary))
    failed = sum(1 for line in report_lines if " **FAIL** " in line)
    delimiter = f"EOF_{secrets.token_hex(16)}"  # a value can never end the multi-line output early
    body = "\n".join(report_lines)
    _append(os.environ.get("GITHUB_OUTPUT"),
            f"outcome={overall}\nruns={len(dirs)}\nfailed={failed}\nreport<<{delimiter}\n{body}\n{delimiter}\n")
    return 0


def machine() -> int:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except (OSError, ValueError):
        pass
    env = {k: os.environ.get(k) for k in ("GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_RUN_ID", "RUNNER_NAME",
                                          "RUNNER_OS", "RUNNER_ARCH", "ImageOS", "ImageVersion")}
    print(json.dumps({"cpus": os.cpu_count(), "cpu_model": cpu, "mem_total_kb": mem_kb,
                      "python": platform.python_version(), "platform": platform.platform(), **env},
                     indent=2, sort_keys=True))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["machine"] and len(argv) == 1:
        return machine()
    if len(argv) == 2 and argv[0] in ("runs", "report"):
        root = Path(argv[1])
        if argv[0] == "runs":
            for d in run_dirs(root) if root.is_dir() else []:
                print(d)
            return 0
        return report(root)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
