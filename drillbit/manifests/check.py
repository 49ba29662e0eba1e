"""``drill manifests check``: render, validate against the Kubernetes schemas offline, run checkov's
Kubernetes checks and drillbit's own resilience rules; findings as JSON and JUnit.

- schemas: kubernetes-validate (bundled schemas, strict: unknown fields are errors) at
  ``kube_version``; a kind it has no schema for (a CRD) is a warning, not a pass in silence;
- checkov: run as a separate program (``$DRILL_CHECKOV``, else ``checkov`` on PATH, else the
  project's ``.tools/checkov`` virtualenv), offline: ``--skip-download``, no mapping download, and
  every proxy pointed at a closed loopback port, so it cannot reach Prisma Cloud. A check
  suppressed in a manifest (``checkov.io/skipN: CKV_K8S_43=reason``) is reported as info with its
  reason. Without checkov the check is an error unless ``checkov=False`` (``--no-checkov``): a check
  that did not run is never a clean result;
- drillbit's rules: ``drillbit.manifests.rules``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drillbit.core.errors import ConfigError
from drillbit.core.results import ManifestFinding, ManifestsRecord
from drillbit.core.safeio import write_text
from drillbit.manifests.render import Rendered, SourceFile, render
from drillbit.manifests.rules import RULES, SEVERITIES, Finding, run_rules

__all__ = [
    "DEFAULT_KUBE_VERSION",
    "FAIL_ON",
    "CheckResult",
    "RecordedManifests",
    "check_manifests",
    "find_checkov",
    "record_manifests",
    "write_outputs",
]

DEFAULT_KUBE_VERSION = "1.31"
FAIL_ON = (*SEVERITIES, "never")
CHECKOV_ENV = "DRILL_CHECKOV"
CHECKOV_TIMEOUT_S = 300.0
CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens; any outbound attempt fails at once
JSON_NAME, JUNIT_NAME = "manifests-check.json", "manifests-check.junit.xml"


@dataclass(frozen=True)
class CheckResult:
    rendered: Rendered
    kube_version: str
    findings: list[Finding]
    checkov: str | None  # the checkov version that ran, None when it did not
    fail_on: str
    passed_checks: dict[str, int] = field(default_factory=dict)  # source -> checks that passed

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    @property
    def exit_code(self) -> int:
        if self.fail_on == "never":
            return 0
        floor = SEVERITIES.index(self.fail_on)
        return 1 if any(SEVERITIES.index(f.severity) >= floor for f in self.findings) else 0

    def to_dict(self) -> dict[str, Any]:
        r = self.rendered
        return {
            "schema": "drillbit.manifests-check/1", "path": r.path, "kustomize": r.kustomize,
            "rendered_sha256": r.rendered_sha256, "objects": len(r.objects),
            "sources": [{"path": s.path, "sha256": s.sha256} for s in r.sources],
            "kube_version": self.kube_version, "checkov": self.checkov, "fail_on": self.fail_on,
            "exit_code": self.exit_code, "counts": self.counts(), "passed_checks": self.passed_checks,
            "rules": [{"id": x.id, "requirement": x.requirement, "title": x.title} for x in RULES],
            "findings": [f.to_dict() for f in self.findings],
        }  # fmt: skip


def _name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def _validate_schemas(rendered: Rendered, kube_version: str) -> tuple[list[Finding], int]:
    import kubernetes_validate as kv  # a large schema set: loaded only for a check

    findings, passed = [], 0
    for obj in rendered.objects:
        try:
            kv.validate(obj, kube_version, strict=True)
            passed += 1
        except kv.ValidationError as err:
            where = ".".join(str(p) for p in err.path) or "(the object)"
            findings.append(Finding("K8S-SCHEMA", "R1.2", "error", _name(obj), rendered.origin(obj),
                                    f"not a valid {obj.get('kind')} for Kubernetes {kube_version}: {where}: "
                                    f"{err.message}", source="kubernetes-validate"))  # fmt: skip
        except kv.SchemaNotFoundError:
            findings.append(Finding("K8S-SCHEMA", "R1.2", "warning", _name(obj), rendered.origin(obj),
                                    f"no schema for {obj.get('apiVersion')} {obj.get('kind')} in Kubernetes "
                                    f"{kube_version} (a custom resource?): not validated",
                                    source="kubernetes-validate"))  # fmt: skip
        except (kv.InvalidSchemaError, KeyError, TypeError, AttributeError) as err:
            findings.append(Finding("K8S-SCHEMA", "R1.2", "error", _name(obj), rendered.origin(obj),
                                    f"cannot be validated: {err}", source="kubernetes-validate"))  # fmt: skip
    return findings, passed


def find_checkov(project_root: Path | None = None) -> str | None:
    """``$DRILL_CHECKOV``, else ``checkov`` on PATH, else ``<project>/.tools/checkov/bin/checkov``."""
    if os.environ.get(CHECKOV_ENV):
        return os.environ[CHECKOV_ENV]
    if found := shutil.which("checkov"):
        return found
    for root in (project_root, Path.cwd()):
        if root is not None and (candidate := root / ".tools" / "checkov" / "bin" / "checkov").is_file():
            return str(candidate)
    return None


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "bc_api_key", "prisma_api_url")}
    env.update(BC_SKIP_MAPPING="TRUE", CKV_SKIP_PACKAGE_UPDATE_CHECK="TRUE", HTTPS_PROXY=CLOSED, HTTP_PROXY=CLOSED,
               https_proxy=CLOSED, http_proxy=CLOSED, NO_PROXY="", no_proxy="", PYTHONWARNINGS="ignore")  # fmt: skip
    return env


def _run_checkov(checkov: str, rendered: Rendered) -> tuple[list[Finding], int, str]:
    by_resource = {f"{o.get('kind')}.{(o.get('metadata') or {}).get('namespace') or 'default'}."
                   f"{(o.get('metadata') or {}).get('name')}": o for o in rendered.objects}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="drill-checkov-") as tmp:
        manifest = Path(tmp) / "rendered.yaml"
        manifest.write_text(rendered.text, encoding="utf-8")
        cmd = [checkov, "-f", str(manifest), "--framework", "kubernetes", "-o", "json", "--compact",
               "--skip-download"]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=CHECKOV_TIMEOUT_S, env=_offline_env(),
                                  cwd=tmp)  # fmt: skip
            version = subprocess.run([checkov, "--version"], capture_output=True, text=True, timeout=60,
                                     env=_offline_env(), cwd=tmp).stdout.strip()  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ConfigError(CHECKOV_ENV, f"checkov ({checkov}) did not run: {err}; fix the path or "
                                           "pass --no-checkov") from None  # fmt: skip
    try:
        out = json.loads(done.stdout) if done.stdout.strip() else {}
    except json.JSONDecodeError:
        raise ConfigError(CHECKOV_ENV, f"checkov ({checkov}) printed no JSON report: "
                                       f"{(done.stderr.strip().splitlines() or ['?'])[-1]}") from None  # fmt: skip
    reports = out if isinstance(out, list) else [out]
    findings, passed = [], 0
    for report in reports:
        results = report.get("results") or {}
        passed += len(results.get("passed_checks") or [])
        for kind, severity in (("failed_checks", "error"), ("skipped_checks", "info")):
            for c in results.get(kind) or []:
                obj = by_resource.get(str(c.get("resource")))
                name = _name(obj) if obj else str(c.get("resource"))
                origin = rendered.origin(obj) if obj else rendered.path
                why = f"suppressed ({c.get('check_result', {}).get('suppress_comment') or 'no reason'}): " \
                    if severity == "info" else ""  # fmt: skip
                findings.append(Finding(str(c.get("check_id")), "R7", severity, name, origin,
                                        f"{why}{c.get('check_name')}", source="checkov"))  # fmt: skip
    return findings, passed, version


def check_manifests(path: Path | str, *, kube_version: str = DEFAULT_KUBE_VERSION, fail_on: str = "error",
                    checkov: bool = True, project_root: Path | None = None) -> CheckResult:  # fmt: skip
    """Render ``path`` and run every check on it (see the module docstring)."""
    if fail_on not in FAIL_ON:
        raise ConfigError("--fail-on", f"unknown severity {fail_on!r}: use one of {', '.join(FAIL_ON)}")
    rendered = render(path)
    findings, schema_passed = _validate_schemas(rendered, kube_version)
    passed = {"kubernetes-validate": schema_passed}
    version = None
    if checkov:
        program = find_checkov(project_root)
        if program is None:
            findings.append(Finding("CHECKOV", "R7", "error", "-", rendered.path,
                                    "checkov is not installed, so its checks did not run: pip install checkov "
                                    f"(or set ${CHECKOV_ENV}), or pass --no-checkov", source="checkov"))  # fmt: skip
        else:
            more, passed["checkov"], version = _run_checkov(program, rendered)
            findings += more
    own = run_rules(rendered.objects, rendered.origin)
    pairs = len(RULES) * sum(o.get("kind") in ("Deployment", "StatefulSet") for o in rendered.objects)
    passed["drillbit"] = pairs - len({(f.rule, f.object) for f in own if f.severity != "info"})
    findings += own
    order = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    findings.sort(key=lambda f: (order[f.severity], f.source, f.rule, f.object))
    return CheckResult(rendered, kube_version, findings, version, fail_on, passed)


@dataclass(frozen=True)
class RecordedManifests:
    record: ManifestsRecord
    sources: list[SourceFile]


def record_manifests(path: Path | str) -> RecordedManifests:
    """What a drill records of the manifests under test: the rendering's hash, every source file's,
    and the schema and resilience findings (checkov is left to ``drill manifests check``: it takes
    seconds and its own virtualenv)."""
    result = check_manifests(path, checkov=False, fail_on="never")
    r = result.rendered
    record = ManifestsRecord(
        path=r.path, kustomize=r.kustomize, rendered_sha256=r.rendered_sha256, objects=len(r.objects),
        kube_version=result.kube_version, checkov=None, counts=result.counts(),
        findings=[ManifestFinding.model_validate(f.to_dict()) for f in result.findings],
    )  # fmt: skip
    return RecordedManifests(record=record, sources=r.sources)


def _junit(result: CheckResult) -> str:
    suites = ET.Element("testsuites", name="drillbit manifests check")
    suite = ET.SubElement(suites, "testsuite", name=f"manifests {result.rendered.path}")
    props = ET.SubElement(suite, "properties")
    for name, value in (("rendered_sha256", result.rendered.rendered_sha256), ("kube_version", result.kube_version),
                        ("checkov", result.checkov or "not run")):  # fmt: skip
        ET.SubElement(props, "property", name=name, value=value)
    failures = skipped = 0
    for f in result.findings:
        case = ET.SubElement(suite, "testcase", classname=f"{f.source}.{f.rule}", name=f"{f.rule} {f.object}",
                             file=f.file)  # fmt: skip
        if f.severity == "info":
            skipped += 1
            ET.SubElement(case, "skipped", message=f.message)
        else:
            failures += 1
            ET.SubElement(case, "failure", type=f.severity, message=f.message).text = f"{f.requirement}: {f.message}"
    if not result.findings:
        ET.SubElement(suite, "testcase", classname="drillbit", name="every check passed")
    for el in (suites, suite):
        el.set("tests", str(max(len(result.findings), 1)))
        el.set("failures", str(failures))
        el.set("errors", "0")
        el.set("skipped", str(skipped))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_outputs(result: CheckResult, out: Path) -> tuple[Path, Path]:
    """``manifests-check.json`` and ``manifests-check.junit.xml`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    js, junit = out / JSON_NAME, out / JUNIT_NAME
    write_text(js, json.dumps(result.to_dict(), indent=1) + "\n")
    write_text(junit, _junit(result))
    return js, junit
