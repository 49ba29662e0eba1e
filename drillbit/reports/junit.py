"""junit.xml: one testcase per SLA verdict, so CI shows each requirement as a test.

PASS -> a passing testcase; FAIL -> ``<failure>`` with measured vs target; INCONCLUSIVE ->
``<error type="INCONCLUSIVE">``: the drill could not tell (fault did not land, no data, saturated
generator). It is deliberately *not* ``<skipped>``: most CI systems treat skipped as green, and an
inconclusive drill proved nothing (the drill itself exits 3). A run without verdicts.json
(interrupted, crashed) yields one errored testcase saying so.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from drillbit.core.results import Outcome, Verdict
from drillbit.reports.summary import Summary

__all__ = ["render_junit", "verdict_message"]

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def verdict_message(v: Verdict) -> str:
    """``measured 20.4 s, target < 15 s`` (+ the reason when there is one)."""
    target = f"target {v.op} {v.target:g} {v.unit}".rstrip()
    msg = f"not measured ({target})" if v.measured is None else f"measured {v.measured:g} {v.unit}, {target}"
    return f"{msg}: {v.reason}" if v.reason else msg


def _outage_properties(summary: Summary) -> list[tuple[str, str]]:
    """Downtime and every outage after the fault (start and end from the fault, length), when measured."""
    m = summary.measurements
    if m.downtime_s is None:
        return []
    return [("downtime_s", f"{m.downtime_s:.3f}"), ("outages", str(len(m.outages))),
            *((f"outage_{i}", f"{o.start_s:.3f}..{o.end_s:.3f} s ({o.length_s:.3f} s, {o.failed_probes} failed probes)")
              for i, o in enumerate(m.outages, 1))]  # fmt: skip


def render_junit(summary: Summary) -> str:
    run = summary.run
    suite_name = f"drillbit.{run.experiment.title or run.experiment.path or run.id}"
    classname = f"drillbit.{run.id}"
    suites = ET.Element("testsuites", name="drillbit")
    suite = ET.SubElement(suites, "testsuite", name=_clean(suite_name), timestamp=_clean(run.started_at_utc or ""))
    props = ET.SubElement(suite, "properties")
    for name, value in (("run_id", run.id), ("outcome", summary.outcome.value if summary.outcome else "none"),
                        ("status", run.status or "unknown"), ("target", run.target.get("name", "")),
                        ("git_commit", run.git_commit or ""), *_outage_properties(summary)):  # fmt: skip
        ET.SubElement(props, "property", name=name, value=_clean(value))
    failures = errors = 0
    cases = summary.verdicts
    for v in cases:
        case = ET.SubElement(suite, "testcase", classname=_clean(classname),
                             name=_clean(f"{v.requirement} {v.sla}: {v.requirement_text}"), time="0")  # fmt: skip
        message = _clean(verdict_message(v))
        if v.verdict is Outcome.FAIL:
            failures += 1
            el = ET.SubElement(case, "failure", message=message, type="FAIL")
            el.text = _clean(f"{message}\nhow measured: {v.how}")
        elif v.verdict is Outcome.INCONCLUSIVE:
            errors += 1
            el = ET.SubElement(case, "error", message=message, type="INCONCLUSIVE")
            el.text = _clean("\n".join([message, f"how measured: {v.how}", *summary.inconclusive_reasons]))
        out = ET.SubElement(case, "system-out")
        out.text = _clean(f"{verdict_message(v)}\nhow measured: {v.how}")
    if not cases:
        errors += 1
        case = ET.SubElement(suite, "testcase", classname=_clean(classname), name="drill verdicts", time="0")
        status = run.status or "unknown"
        why = "no verdicts.json" if summary.outcome is None else "no SLA was evaluated"
        missing = ", ".join(summary.missing) or "-"
        message = _clean(f"{why}: the drill's status is {status}; missing: {missing}")
        ET.SubElement(case, "error", type="NO_VERDICT", message=message)
    tests = max(len(cases), 1)
    for el in (suites, suite):
        el.set("tests", str(tests))
        el.set("failures", str(failures))
        el.set("errors", str(errors))
        el.set("skipped", "0")
    if run.duration_s is not None:
        suite.set("time", f"{run.duration_s:.3f}")
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
