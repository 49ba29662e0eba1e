"""Alert latency: the drill's Alertmanager webhook receiver, and the analyzer of what it received.

A DR drill is the one time the fault and its moment are known, so it is the one time a team can
prove its alerting works (seeds R3.3, R10.1: alerts within 30 s). During the drill,
:class:`AlertReceiver` listens where the target's Alertmanager sends its webhooks (the sandbox
points every receiver of ``infra/monitoring/alertmanager.yml`` at it; a team points a route of its
own Alertmanager at ``drill run``'s host). Every alert of every notification becomes one ``alert``
event in events.jsonl, timed by the drill's clock on arrival, with its name, status, severity,
labels, ``startsAt`` and ``endsAt``.

The chain from a fault to a notification: the condition becomes true when the fault bites; the
next scrape sees it (at most one scrape interval); the next rule evaluation (at most one
evaluation interval) makes the alert pending, ``for`` later firing (Prometheus's ``startsAt``);
Alertmanager waits ``group_wait`` for a new group (a group that still exists, e.g. with a resolved
alert of an earlier incident not yet delivered, sends at its next ``group_interval`` tick instead),
then delivers (loopback: milliseconds). The
receiver reads these settings from Prometheus and Alertmanager themselves at start
(:class:`AlertChain`), so the report explains a latency with the monitoring's own figures. Both
ends of each latency are on the drill's clock (the fault event, the arrival), and ``startsAt`` on
the machine's wall clock (the same clock on loopback; across machines, their NTP offset adds to
it: the report says so).

The analyzer (:func:`analyze_alerts`) judges what the experiment declared it expects
(``expect_alerts`` in its drillbit extension; an entry may carry ``when: FACT``, a fact a fault
reported, e.g. ``primary_lost``): an expected alert that never fired is a failure; a critical
alert nobody expected, too; an alert already firing before the fault puts the drill in doubt
(the target was not healthy to begin with).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from drillbit.core.clock import Clock
from drillbit.core.events import EventLog
from drillbit.core.measurements import AlertChain, AlertRecord, AlertsMeasurement
from drillbit.core.rundir import EVENTS
from drillbit.core.safeio import write_text

__all__ = ["ALERTS_META", "AlertReceiver", "alert_bound_s", "analyze_alerts", "parse_duration", "read_chain",
           "route_delay_s"]

log = logging.getLogger(__name__)

#: the receiver's account of itself (where it listened, what it expected, the chain it read)
ALERTS_META = "samples/alerts.json"
#: a webhook body larger than this is refused (Alertmanager's are a few kB)
MAX_BODY = 1 << 20
_ZERO_TIME = "0001-01-01"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_FRACTION = re.compile(r"\.(\d{6})\d+")


def parse_duration(text: str) -> float:
    """A Prometheus duration (``1m30s``, ``500ms``) in seconds; ValueError when it is not one."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _epoch(text: Any) -> float | None:
    """An RFC 3339 time (Alertmanager's, nanoseconds and all) in epoch seconds; None for Go's zero time."""
    if not isinstance(text, str) or not text or text.startswith(_ZERO_TIME):
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r".\1", text.replace("Z", "+00:00"))).timestamp()
    except ValueError:
        return None


_SEVERITY = re.compile(r"""^\s*severity\s*=\s*"?([^"]*)"?\s*$""")


def _by_severity(route: dict[str, Any], key: str, root_value: float) -> dict[str, float]:
    """``key`` (group_wait, group_interval) of each first-level route that matches one severity
    (``matchers: ['severity="critical"']`` or the older ``match: {severity: critical}``); a route
    without its own inherits the root's."""
    out: dict[str, float] = {}
    for child in route.get("routes") or []:
        if not isinstance(child, dict):
            continue
        found = [m[1] for m in (_SEVERITY.match(str(x)) for x in child.get("matchers") or []) if m]
        found += [str(v) for k, v in (child.get("match") or {}).items() if k == "severity"]
        for severity in found:
            out.setdefault(severity, parse_duration(str(child[key])) if key in child else root_value)
    return out


def read_chain(prometheus_url: str | None, alertmanager_url: str | None, *, timeout: float = 2.0) -> AlertChain:
    """The alert chain's settings, as Prometheus and Alertmanager report them (what they run, not a file)."""
    chain: dict[str, Any] = {"for_s": {}, "severity": {}, "problems": []}
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        if prometheus_url:
            try:
                cfg = yaml.safe_load(client.get(f"{prometheus_url}/api/v1/status/config").json()["data"]["yaml"])
                glob = cfg.get("global") or {}
                chain["scrape_interval_s"] = parse_duration(str(glob.get("scrape_interval", "1m")))
                chain["evaluation_interval_s"] = parse_duration(str(glob.get("evaluation_interval", "1m")))
                groups = client.get(f"{prometheus_url}/api/v1/rules", params={"type": "alert"}).json()["data"]["groups"]
                for group in groups:
                    for rule in group.get("rules", []):
                        name, wait = str(rule.get("name")), float(rule.get("duration") or 0.0)
                        chain["for_s"][name] = max(wait, chain["for_s"].get(name, 0.0))
                        severity = (rule.get("labels") or {}).get("severity")
                        if severity and chain["severity"].get(name) != "critical":  # the most urgent route
                            chain["severity"][name] = str(severity)
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as err:
                chain["problems"].append(f"Prometheus {prometheus_url}: {type(err).__name__}: {err}")
        else:
            chain["problems"].append("no Prometheus URL: scrape and evaluation intervals unknown")
        if alertmanager_url:
            try:
                cfg = yaml.safe_load(client.get(f"{alertmanager_url}/api/v2/status").json()["config"]["original"])
                route = cfg.get("route") or {}
                for key, default in (("group_wait", "30s"), ("group_interval", "5m")):  # Alertmanager's defaults
                    root = parse_duration(str(route.get(key, default)))
                    chain[f"{key}_s"] = root
                    chain[f"{key}_by_severity"] = _by_severity(route, key, root)
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as err:
                chain["problems"].append(f"Alertmanager {alertmanager_url}: {type(err).__name__}: {err}")
        else:
            chain["problems"].append("no Alertmanager URL: group_wait unknown")
    return AlertChain.model_validate(chain)


class AlertReceiver:
    """Alertmanager's webhook receiver for one drill: each alert of each notification becomes an
    ``alert`` event; ``samples/alerts.json`` records where it listened and what the drill expects."""

    def __init__(self, bind: str, run_dir: Path, clock: Clock, *, expect: list[dict[str, Any]] | None,
                 prometheus_url: str | None = None, alertmanager_url: str | None = None) -> None:  # fmt: skip
        host, _, port = bind.rpartition(":")
        self.address = (host or "127.0.0.1", int(port))
        self.run_dir, self.clock, self.expect = run_dir, clock, expect
        self.prometheus_url, self.alertmanager_url = prometheus_url, alertmanager_url
        self.events: EventLog | None = None
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.notifications = 0
        self.refused = 0
        self.error: str | None = None
        self.stopped_at: float | None = None  # until when it listened (None: still, or the drill died)
        self._lock = threading.Lock()

    def _meta(self) -> dict[str, Any]:
        return {"receiver": f"{self.address[0]}:{self.address[1]}", "listening": self.server is not None,
                "stopped_at": self.stopped_at,
                "error": self.error, "declared": self.expect is not None, "expect": self.expect or [],
                "notifications": self.notifications, "refused": self.refused,
                "prometheus_url": self.prometheus_url, "alertmanager_url": self.alertmanager_url}  # fmt: skip

    def _write_meta(self, chain: AlertChain | None = None) -> None:
        path = self.run_dir / ALERTS_META
        path.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(path.read_text()) if path.exists() else {}
        meta = {**old, **self._meta(), **({"chain": chain.model_dump()} if chain is not None else {})}
        write_text(path, json.dumps(meta, indent=2, sort_keys=True))

    def start(self) -> AlertReceiver:
        """Listen. A port that cannot be bound is recorded (the alert SLAs are then unmeasured), not raised."""
        self.events = EventLog(self.run_dir / EVENTS, self.clock)
        try:
            self.server = ThreadingHTTPServer(self.address, _handler(self))
        except OSError as err:
            self.error = f"cannot listen on {self.address[0]}:{self.address[1]}: {err}"
            log.error("alert receiver: %s", self.error)
        else:
            self.address = (self.address[0], int(self.server.server_address[1]))  # port 0: the one bound
            self.server.daemon_threads = True
            self.thread = threading.Thread(target=self.server.serve_forever, name="alert-receiver", daemon=True)
            self.thread.start()
        self._write_meta(read_chain(self.prometheus_url, self.alertmanager_url))
        return self

    def receive(self, body: bytes) -> bool:
        """One webhook body: an event per alert; False (refused) when it is not an Alertmanager notification."""
        arrived = self.clock.now()
        try:
            data = json.loads(body)
            alerts = data["alerts"]
            if not isinstance(alerts, list):
                raise TypeError("alerts is not a list")
        except (ValueError, KeyError, TypeError, RecursionError) as err:
            with self._lock:
                self.refused += 1
            log.warning("alert receiver: refused a notification that is not Alertmanager's (%s)", err)
            return False
        assert self.events is not None
        for alert in alerts:
            if not isinstance(alert, dict):
                continue
            labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
            self.events.emit("alert", t=arrived, name=labels.get("alertname", "?"), status=str(alert.get("status")),
                             severity=labels.get("severity"), labels=labels, starts_at=_epoch(alert.get("startsAt")),
                             ends_at=_epoch(alert.get("endsAt")), fingerprint=alert.get("fingerprint"),
                             receiver=data.get("receiver"))  # fmt: skip
        with self._lock:
            self.notifications += 1
        return True

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.stopped_at = self.clock.now()
        self._write_meta()
        if self.events is not None:
            self.events.close()
            self.events = None


def _handler(receiver: AlertReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            ok = receiver.receive(self.rfile.read(length))
            self.send_response(200 if ok else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # http.server's names
            return

    return Handler


# -- the analyzer -------------------------------------------------------------------------------

def _since(facts: list[dict[str, Any]], key: str) -> float | None:
    """The first time (epoch seconds) a fault reported under ``key``."""
    return next((float(f[key]) for f in facts if isinstance(f.get(key), int | float)), None)


def _expected(meta: dict[str, Any], facts: list[dict[str, Any]]) -> tuple[list[str], list[str], dict[str, str]]:
    """(required, allowed, not expected and why) for this run, ``when`` and ``since`` conditions applied."""
    names: list[str] = []
    allowed: list[str] = []
    skipped: dict[str, str] = {}
    for entry in meta.get("expect") or []:
        name, when, since = str(entry["alert"]), entry.get("when"), entry.get("since")
        if when and not any(f.get(when) for f in facts):
            skipped[name] = f"expected only when a fault reports {when}: none did"
        elif since and _since(facts, since) is None:
            skipped[name] = f"expected once a fault reports {since} (its condition's start): none did"
        elif entry.get("required", True) is False:
            allowed.append(name)
        elif name not in names:
            names.append(name)
    return names, [n for n in allowed if n not in names], skipped


def alert_bound_s(chain: AlertChain, name: str) -> float:
    """The longest an alert can take from a condition true at the fault to its notification: its
    rule's for + a scrape + an evaluation + its route's grouping delay + 1 s of delivery. Unknown parts
    count as Prometheus's and Alertmanager's defaults (1 min scrape and evaluation, 30 s group_wait)."""
    return (chain.for_s.get(name, 0.0) + (chain.scrape_interval_s or 60.0) + (chain.evaluation_interval_s or 60.0)
            + route_delay_s(chain, chain.severity.get(name)) + 1.0)  # fmt: skip


def route_delay_s(chain: AlertChain, severity: str | None) -> float:
    """The longest Alertmanager holds a firing alert of this severity: group_wait for a new group,
    group_interval when its group still exists (an earlier incident's resolved alert not yet sent)."""
    wait = chain.group_wait_by_severity.get(severity or "", chain.group_wait_s)
    interval = chain.group_interval_by_severity.get(severity or "", chain.group_interval_s)
    return max(30.0 if wait is None else wait, 0.0 if interval is None else interval)


def analyze_alerts(events: list[dict[str, Any]], meta: dict[str, Any], *, fault_at: float,
                   recovered_at: float | None, fault_details: list[dict[str, Any]]) -> AlertsMeasurement:  # fmt: skip
    """Each alert's course after the fault, from the ``alert`` events; raises ValueError when the
    receiver did not listen (nothing could have been received: unmeasured, never "no alert")."""
    if not meta.get("listening"):
        raise ValueError(f"the alert receiver did not listen: {meta.get('error') or 'unknown reason'}")
    expected, allowed, skipped = _expected(meta, fault_details)
    # when each expected alert's condition became true: the fault, or the fact its entry names (since)
    start = {str(e["alert"]): _since(fault_details, e["since"]) or fault_at
             for e in meta.get("expect") or [] if e.get("since")}  # fmt: skip
    alerts = sorted((e for e in events if e.get("kind") == "alert"), key=lambda e: float(e["t"]))
    records: dict[str, AlertRecord] = {}
    before: set[str] = set()  # firing in the baseline, and not resolved before the fault
    for e in alerts:
        name, t, starts = str(e.get("name")), float(e["t"]), e.get("starts_at")
        firing = e.get("status") == "firing"
        if t < fault_at:
            if firing:
                before.add(name)
            else:
                before.discard(name)
            continue
        rec = records.get(name) or AlertRecord(name=name, severity=e.get("severity"), expected=name in expected,
                                               labels=e.get("labels") or {})  # fmt: skip
        if firing and rec.notified_at is None and starts is not None and float(starts) >= fault_at:
            began, since = float(starts), start.get(name, fault_at)
            rec = rec.model_copy(update={"fired_at": began, "notified_at": t, "fired_s": began - since,
                                         "notified_s": t - since, "severity": e.get("severity") or rec.severity,
                                         "since": None if name not in start else since})  # fmt: skip
        elif not firing and rec.notified_at is not None and rec.resolved_notified_at is None:
            ends = e.get("ends_at")
            rec = rec.model_copy(update={"resolved_at": ends, "resolved_notified_at": t,
                                         "resolved_s": t - recovered_at if recovered_at is not None else None})
        records[name] = rec
    fired = {n for n, r in records.items() if r.notified_at is not None}
    for name in expected:
        records.setdefault(name, AlertRecord(name=name, expected=True))
    chain = AlertChain.model_validate(meta.get("chain") or {})
    # how long after the fault drillbit listened: a drill cut short (interrupted, killed) cannot say an
    # alert never fires, only that it had not fired yet
    until = meta.get("stopped_at") or max((float(e["t"]) for e in events), default=fault_at)
    observed = max(0.0, float(until) - fault_at)
    silent = [n for n in expected if n not in fired]

    def due(name: str) -> bool:  # listened long enough after its condition began for it to have fired
        return float(until) - start.get(name, fault_at) >= alert_bound_s(chain, name)

    latencies = [r.notified_s for n, r in records.items() if n in expected and r.notified_s is not None]
    return AlertsMeasurement(
        receiver=str(meta.get("receiver")), notifications=int(meta.get("notifications") or 0), expected=expected,
        not_expected=skipped, alerts=sorted(records.values(), key=lambda r: (not r.expected, r.name)),
        missing=[n for n in silent if due(n)], not_yet=[n for n in silent if not due(n)], observed_s=observed,
        allowed=allowed,
        unexpected_critical=sorted(n for n in fired if n not in {*expected, *allowed}
                                   and records[n].severity == "critical"),
        firing_before_fault=sorted(before), latency_s=max(latencies) if latencies else None,
        chain=chain,
    )  # fmt: skip
