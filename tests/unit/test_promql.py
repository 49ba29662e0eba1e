"""drillbit.probes.promql against a real Prometheus (Debian's /usr/bin/prometheus) on loopback,
scraping (every 1 s) a loopback exporter whose values this test sets: the ground truth."""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from chaoslib.exceptions import ActivityFailed
from chaoslib.experiment import run_experiment
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from drillbit.probes.promql import promql_figures, query_range_figures, query_value, query_within
from tests.quiet_servers import serve_wsgi

PROMETHEUS = "/usr/bin/prometheus"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "experiments" / "examples" / "promql-steady-state.yaml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(PROMETHEUS) is None, reason="Debian's prometheus is not installed"),
]

FIRST, SECOND = 10.0, 42.5  # the gauge's values, in that order
ORDERS_OK, ORDERS_ERROR = 3997, 3  # the counter's values: an error ratio of 0.075 %
RATIO = ORDERS_ERROR / (ORDERS_OK + ORDERS_ERROR)


@dataclass
class Stack:
    url: str  # Prometheus
    exporter_url: str
    started: float  # epoch seconds, before the first sample
    first_seen: float  # when Prometheus answered FIRST (its sample is from before)
    switched: float  # when the gauge went from FIRST to SECOND (Prometheus has seen both)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (ActivityFailed, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    registry = CollectorRegistry()
    gauge = Gauge("drill_test_gauge", "a value the test sets", registry=registry)
    gauge.set(FIRST)
    Gauge("drill_test_nan", "always NaN", registry=registry).set(math.nan)
    orders = Counter("drill_test_orders", "orders by result", ["result"], registry=registry)
    orders.labels("ok").inc(ORDERS_OK)
    orders.labels("error").inc(ORDERS_ERROR)
    latency = Histogram("sut_http_request_duration_seconds", "request latency", ["route", "method", "status"],
                        registry=registry, buckets=(0.001, 0.005, 0.01, 0.1, 1.0))  # fmt: skip
    server, thread = serve_wsgi(make_wsgi_app(registry))  # quiet: Prometheus scrapes it all session long
    exporter = f"127.0.0.1:{server.server_address[1]}"
    stop = threading.Event()

    def traffic() -> None:  # 50 requests/s at 4 ms, none failed: error rate 0, p95 under 5 ms
        while not stop.wait(0.02):
            latency.labels("/orders", "POST", "2xx").observe(0.004)

    traffic_thread = threading.Thread(target=traffic, daemon=True)
    traffic_thread.start()

    base = tmp_path_factory.mktemp("prometheus")
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "exporter", "static_configs": [{"targets": [exporter]}]}]}  # fmt: skip
    (base / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    started = time.time()
    log = (base / "prometheus.log").open("wb")
    argv = [PROMETHEUS, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("Prometheus ready", lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200)
        _wait("the first scrape", lambda: query_value("drill_test_gauge", prometheus_url=url) == FIRST)
        first_seen = time.time()
        gauge.set(SECOND)
        switched = time.time()
        _wait("the second value", lambda: query_value("drill_test_gauge", prometheus_url=url) == SECOND)
        # a range query evaluates at start + k x step: until a step lands after the second sample's
        # timestamp (up to one step later than the instant query sees it), it shows only the first
        _wait("the second value in a range query", lambda: query_range_figures(
            "drill_test_gauge", started, time.time(), step=1, prometheus_url=url)["series"][0]["max"] == SECOND)
        yield Stack(url=url, exporter_url=f"http://{exporter}", started=started, first_seen=first_seen,
                    switched=switched)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        stop.set()
        traffic_thread.join(timeout=5)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_query_value_returns_the_exporters_values(stack: Stack) -> None:
    assert query_value("drill_test_gauge", prometheus_url=stack.url) == SECOND
    total = query_value("sum(drill_test_orders_total)", prometheus_url=stack.url)
    assert total == ORDERS_OK + ORDERS_ERROR
    ratio = query_value('drill_test_orders_total{result="error"} / ignoring(result) '
                        'drill_test_orders_total{result="ok"}', prometheus_url=stack.url)  # fmt: skip
    assert ratio == ORDERS_ERROR / ORDERS_OK
    assert query_value("scalar(drill_test_gauge) * 2", prometheus_url=stack.url) == 2 * SECOND
    # at a time before the switch, the first value (an instant query at a given time)
    assert query_value("drill_test_gauge", at=stack.first_seen, prometheus_url=stack.url) == FIRST


def test_the_url_comes_from_the_configuration_then_the_environment(stack: Stack, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:  # fmt: skip
    monkeypatch.delenv("DRILL_PROMETHEUS_URL", raising=False)
    assert query_value("drill_test_gauge", configuration={"prometheus_url": stack.url}) == SECOND
    monkeypatch.setenv("DRILL_PROMETHEUS_URL", stack.url)
    assert query_value("drill_test_gauge") == SECOND
    # the argument wins over the configuration, which wins over the environment
    monkeypatch.setenv("DRILL_PROMETHEUS_URL", "http://127.0.0.1:9")
    assert query_value("drill_test_gauge", configuration={"prometheus_url": stack.url}) == SECOND
    assert query_value("drill_test_gauge", prometheus_url=stack.url,
                       configuration={"prometheus_url": "http://127.0.0.1:9"}) == SECOND  # fmt: skip
    monkeypatch.delenv("DRILL_PROMETHEUS_URL")
    with pytest.raises(ActivityFailed, match="no Prometheus URL"):
        query_value("drill_test_gauge")


@pytest.mark.parametrize(("op", "threshold", "within"), [
    ("<", 0.001, True), ("<", 0.0005, False), ("lt", 0.001, True), (">", 0.0005, True), ("gt", 0.001, False),
    ("<", RATIO, False), ("<=", RATIO, True), (">=", RATIO, True), (">", RATIO, False), ("==", RATIO, True),
    ("!=", RATIO, False),
])  # fmt: skip
def test_query_within_passes_and_fails_on_the_right_side(stack: Stack, op: str, threshold: float, within: bool) -> None:
    error_ratio = 'sum(drill_test_orders_total{result="error"}) / sum(drill_test_orders_total)'
    assert query_value(error_ratio, prometheus_url=stack.url) == RATIO
    assert query_within(error_ratio, op=op, threshold=threshold, prometheus_url=stack.url) is within


@pytest.mark.parametrize(("query", "reason"), [
    ("no_such_metric_anywhere", "no series"),
    ("sum(", "refused it (400 bad_data)"),
    ("drill_test_orders_total", "2 series"),
    ("drill_test_nan", "NaN"),
    ("sum(drill_test_gauge) / 0", "+Inf"),
    ("drill_test_gauge[1m]", "matrix"),
    ('"text"', "string"),
])  # fmt: skip
def test_an_unmeasurable_query_raises_naming_it(stack: Stack, query: str, reason: str) -> None:
    with pytest.raises(ActivityFailed) as caught:
        query_value(query, prometheus_url=stack.url)
    message = str(caught.value)
    assert reason in message and repr(query) in message and "\n" not in message, message
    with pytest.raises(ActivityFailed):  # never "within" by default
        query_within(query, op="<", threshold=1e12, prometheus_url=stack.url)


def test_http_errors_and_a_prometheus_that_is_down_raise(stack: Stack) -> None:
    with pytest.raises(ActivityFailed, match="answered HTTP 404"):
        query_value("drill_test_gauge", prometheus_url=f"{stack.url}/no/such/prefix")
    with pytest.raises(ActivityFailed, match="did not answer as Prometheus's query API"):
        query_value("drill_test_gauge", prometheus_url=stack.exporter_url)  # 200, but metrics text
    down = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ActivityFailed, match=r"unreachable: ConnectError") as caught:
        query_value("drill_test_gauge", prometheus_url=down, timeout_s=2)
    assert "'drill_test_gauge'" in str(caught.value)
    with pytest.raises(ActivityFailed, match="op '~' is not one of"):
        query_within("drill_test_gauge", op="~", threshold=1, prometheus_url=stack.url)


def test_query_range_figures_sees_both_values(stack: Stack) -> None:
    figures = query_range_figures("drill_test_gauge", stack.started, time.time(), step=1, prometheus_url=stack.url)
    (series,) = figures["series"]
    assert series["labels"]["__name__"] == "drill_test_gauge"
    assert (series["min"], series["max"], series["last"]) == (FIRST, SECOND, SECOND)
    assert series["not_a_number"] == 0 and all(v in (FIRST, SECOND) for _, v in series["points"])
    with pytest.raises(ActivityFailed, match="no finite value"):
        query_range_figures("drill_test_nan", stack.started, time.time(), step=1, prometheus_url=stack.url)
    with pytest.raises(ActivityFailed, match="no series"):
        query_range_figures("no_such_metric_anywhere", stack.started, time.time(), prometheus_url=stack.url)


def test_promql_figures_reports_each_query_and_never_a_zero_for_an_unmeasurable_one(stack: Stack) -> None:
    now = time.time()
    out = promql_figures(stack.url, {"gauge": "drill_test_gauge", "missing": "no_such_metric_anywhere",
                                     "bad": "sum(", "nan": "drill_test_nan",
                                     "several": "drill_test_orders_total"}, stack.started, now)  # fmt: skip
    figures = out["figures"]
    assert figures["gauge"] | {"query": None} == {"query": None, "value": SECOND, "min": FIRST, "max": SECOND,
                                                  "measured": True, "error": None}  # fmt: skip
    for name in ("missing", "bad", "nan", "several"):
        assert figures[name]["measured"] is False and figures[name]["value"] is None, figures[name]
        assert figures[name]["min"] is None and figures[name]["max"] is None
        assert out["errors"][name] == figures[name]["error"] and figures[name]["error"]
    assert set(out["errors"]) == {"missing", "bad", "nan", "several"}
    assert out["prometheus_url"] == stack.url and out["end"] == now
    down = promql_figures(f"http://127.0.0.1:{_free_port()}", {"gauge": "drill_test_gauge"}, now - 60, now,
                          timeout_s=2)  # fmt: skip
    assert down["figures"]["gauge"]["measured"] is False and "unreachable" in down["errors"]["gauge"]


def test_the_example_experiments_hypothesis_is_met_from_prometheus(stack: Stack) -> None:
    experiment = yaml.safe_load(EXAMPLE.read_text())
    experiment["configuration"] = {"prometheus_url": stack.url}
    journal = run_experiment(experiment)
    assert journal["status"] == "completed" and journal["steady_states"]["before"]["steady_state_met"], journal
    assert journal["run"][0]["output"] == 0.0  # no failed request: an error rate of exactly 0

    experiment["configuration"] = {"prometheus_url": f"http://127.0.0.1:{_free_port()}"}  # down: not met
    journal = run_experiment(experiment)
    assert journal["status"] == "failed" and not journal["steady_states"]["before"]["steady_state_met"]
