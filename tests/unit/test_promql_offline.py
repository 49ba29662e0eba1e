"""drillbit.probes.promql without a Prometheus: where the URL comes from, what is refused before
any request, credentials masked, and the shipped example experiment valid for plain `chaos validate`
(the probes against a real Prometheus: tests/integration/test_promql.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from drillbit.probes.promql import promql_figures, query_value, query_within, resolve_prometheus_url

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "experiments" / "examples" / "promql-steady-state.yaml"


def test_the_url_comes_from_the_argument_then_the_configuration_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRILL_PROMETHEUS_URL", "http://env:9090")
    config = {"prometheus_url": "http://config:9090/"}
    assert resolve_prometheus_url("http://arg:9090", config) == "http://arg:9090"
    assert resolve_prometheus_url(None, config) == "http://config:9090"
    assert resolve_prometheus_url(None, {}) == "http://env:9090"
    monkeypatch.delenv("DRILL_PROMETHEUS_URL")
    with pytest.raises(ActivityFailed, match="no Prometheus URL"):
        resolve_prometheus_url(None, None)
    with pytest.raises(ActivityFailed, match="is not http"):
        resolve_prometheus_url("file:///etc/passwd")


def test_bad_arguments_are_refused_before_any_request() -> None:
    with pytest.raises(ActivityFailed, match="op '=>' is not one of"):
        query_within("up", op="=>", threshold=1, prometheus_url="http://127.0.0.1:9")
    with pytest.raises(ActivityFailed, match="threshold 'lots' is not a number"):
        query_within("up", op="<", threshold="lots", prometheus_url="http://127.0.0.1:9")  # type: ignore[arg-type]


def test_an_unreachable_prometheus_raises_one_line_with_its_credentials_masked() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ActivityFailed) as caught:
        query_value("sum(rate(x[1m]))", prometheus_url=f"http://ops:hunter22@127.0.0.1:{port}", timeout_s=2)
    message = str(caught.value)
    assert "hunter22" not in message and "unreachable" in message and "'sum(rate(x[1m]))'" in message
    assert "\n" not in message
    figures = promql_figures(f"http://ops:hunter22@127.0.0.1:{port}", {"x": "up"}, 0, 60, timeout_s=2)
    assert figures["figures"]["x"]["value"] is None and figures["figures"]["x"]["measured"] is False
    assert "hunter22" not in str(figures)


def test_the_example_experiment_is_valid_for_plain_chaos_validate() -> None:
    chaos = Path(sys.executable).with_name("chaos")
    proc = subprocess.run([str(chaos), "--no-log-file", "validate", str(EXAMPLE)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "experiment syntax and semantic look valid" in proc.stdout + proc.stderr
