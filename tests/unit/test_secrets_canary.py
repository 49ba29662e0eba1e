"""Canary secrets: a token in an observed URL's query and a value of an experiment's ``secrets:``
block never reach a run directory, a log line or an error message (URL query values are masked,
their key names kept)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from drillbit.annotations import GrafanaConfig, annotate_run
from drillbit.core.redact import MASK, Redactor, redact_url, secret_values, url_secrets

CANARY = "canary-0b5e7c1d-token"


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@pytest.fixture
def service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(180)
def test_an_observed_urls_query_token_reaches_no_file_and_no_output(service: str, tmp_path: Path) -> None:
    url = f"{service}/healthz?token={CANARY}&region=a"
    proc = subprocess.run([sys.executable, "-m", "drillbit.cli", "observe", "--url", url, "--duration", "3s",
                           "--interval", "0.2", "--out", str(tmp_path / "runs"), "--state-dir", str(tmp_path / "s"),
                           "--plain"], capture_output=True, text=True, timeout=150)  # fmt: skip
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 1, 3), proc.stderr
    assert CANARY not in proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 5
    for p in [*files, *(tmp_path / "s").rglob("*")]:
        if p.is_file():
            assert CANARY.encode() not in p.read_bytes(), f"the canary leaked into {p}"
    target = json.loads((run_dir / "run.json").read_text())["target"]
    assert target["fingerprint"]["url"] == f"{service}/healthz?token={MASK}&region={MASK}"
    assert "token=***" in (run_dir / "samples" / "availability.json").read_text()


def test_an_experiment_secret_is_masked_in_every_validation_error(tmp_path: Path) -> None:
    exp = tmp_path / "e.yaml"
    exp.write_text(f"title: t\ndescription: d\nsecrets: {{db: {{password: {CANARY}}}}}\n"
                   "steady-state-hypothesis: {title: h}\n"
                   f"method: [{{type: action, name: {CANARY}x, provider: {{type: python, module: drillbit.faults, "
                   f"func: kill_replicas, arguments: {{count: {CANARY}, region: {CANARY}}}}}}}]\n"
                   f"extensions: [{{name: drillbit, cooldown_s: {CANARY}, profile: {CANARY}}}]\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "drillbit.cli", "run", str(exp), "--dry-run"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert CANARY not in proc.stderr and "(got '***')" in proc.stderr and "cooldown_s" in proc.stderr


def test_a_long_secret_is_masked_before_an_error_shortens_it(tmp_path: Path) -> None:
    secret = "s" * 30 + CANARY + "t" * 60
    exp = tmp_path / "e.yaml"
    exp.write_text(f"title: t\ndescription: d\nsecrets: {{db: {{password: {secret}}}}}\n"
                   "steady-state-hypothesis: {title: h}\nmethod: [{ref: x}]\n"
                   f"extensions: [{{name: drillbit, baseline_s: {secret}}}]\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "drillbit.cli", "run", str(exp), "--dry-run"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "baseline_s" in proc.stderr
    assert "sssss" not in proc.stderr and "ttttt" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(("url", "shown", "secrets"), [
    ("http://h/?token=S3cr", "http://h/?token=***", {"S3cr"}),
    ("http://u:pw12@h:80/p?a=1&flag&c=#frag", "http://u:***@h:80/p?a=***&***&c=#***", {"pw12", "1", "flag", "frag"}),
    ("https://TOKEN@h/x", "https://***@h/x", {"TOKEN"}),
    ("http://127.0.0.1:8080/readyz", "http://127.0.0.1:8080/readyz", set()),
])  # fmt: skip
def test_urls_keep_their_query_keys_and_lose_their_values(url: str, shown: str, secrets: set[str]) -> None:
    assert redact_url(url) == shown
    assert url_secrets(url) == secrets
    assert Redactor().text(f"GET {url} failed") == f"GET {shown} failed"


class _EchoesAuth(BaseHTTPRequestHandler):
    """A failing Grafana that echoes the request's Authorization header in its error."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = f'{{"message": "denied for {self.headers.get("Authorization")}"}}'.encode()
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


def test_the_grafana_token_reaches_no_file_no_log_and_no_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip

    monkeypatch.setenv("DRILL_GRAFANA_AUTH", CANARY)  # a variable name the redactor does not know for a secret
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoesAuth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    run_dir = tmp_path / "20261202T170000Z-pod-kill"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text('{"t": 1796000000.0, "kind": "phase", "name": "baseline"}\n'
                                          '{"t": 1796000005.0, "kind": "drill.end"}\n')  # fmt: skip
    try:
        config = GrafanaConfig(url=f"http://127.0.0.1:{server.server_address[1]}", token_env="DRILL_GRAFANA_AUTH")
        result = annotate_run(run_dir, config)
    finally:
        server.shutdown()
        server.server_close()
    assert result.posted == 0 and "HTTP 403" in result.errors[0] and "Bearer ***" in result.errors[0]
    out = capsys.readouterr()
    for text in (result.model_dump_json(), caplog.text, out.out, out.err, config.model_dump_json()):
        assert CANARY not in text
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert CANARY.encode() not in p.read_bytes(), f"the canary leaked into {p}"


#: AWS credentials as canaries: an access key ID, a secret access key and a session token, from the
#: environment (what boto3 and chaosaws read) and from an experiment's chaosaws ``secrets:`` block
AWS_CANARIES = {"AWS_ACCESS_KEY_ID": "AKIACANARY0B5E7C1D00", "AWS_SECRET_ACCESS_KEY": "canary/0b5e7c1d+SecretAccessKey",
                "AWS_SESSION_TOKEN": "IQoJcanary0b5e7c1dSessionToken//////////wEaCXVz"}  # fmt: skip


def test_aws_keys_and_session_tokens_are_masked_in_journals_logs_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_CANARIES.items():
        monkeypatch.setenv(name, value)
    block = {"aws": {"aws_access_key_id": "AKIAEXPERIMENTCANARY1", "aws_secret_access_key": "exp/canary+secret",
                     "aws_session_token": "exp-canary-session-token"}}  # fmt: skip
    leaked = [*AWS_CANARIES.values(), *block["aws"].values()]
    journal = {"secrets": block, "run": [{"output": {"signed": f"Credential={v}/20260101/eu-west-1/sts"},
                                          "exception": [f"botocore: {v} rejected"]} for v in leaked]}  # fmt: skip
    redact = Redactor(secret_values(block))
    text = json.dumps(redact(journal)) + redact.text(" ".join(f"log line {v}" for v in leaked))
    assert all(v not in text for v in leaked) and text.count(MASK) >= 2 * len(leaked)


def test_aws_credentials_never_reach_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An AWS target's fields echoed in a validation error (a key pasted into the wrong field) are masked."""
    from drillbit.core.errors import ConfigError
    from drillbit.targets import load_targets

    for name, value in AWS_CANARIES.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "drill.yaml"
    config.write_text(f"targets:\n  aws: {{kind: aws, accounts: ['{AWS_CANARIES['AWS_ACCESS_KEY_ID']}'], regions: "
                      f"{{primary: eu-west-1}}, api_url: x, app_tier: {{a: b}}, "
                      f"profile: '{AWS_CANARIES['AWS_SECRET_ACCESS_KEY']}', "
                      f"endpoint_url: '{AWS_CANARIES['AWS_SESSION_TOKEN']}'}}\n")  # fmt: skip
    with pytest.raises(ConfigError) as err:
        load_targets(config)
    assert "accounts" in str(err.value) and all(v not in str(err.value) for v in AWS_CANARIES.values())
