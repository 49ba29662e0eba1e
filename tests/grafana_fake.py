"""A loopback HTTP server standing for Grafana's annotations API (no Grafana runs here): it records
every request it receives and answers as Grafana does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.quiet_servers import serve

__all__ = ["Recorder", "recording_grafana"]


@dataclass
class Recorder:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@contextmanager
def recording_grafana() -> Iterator[Recorder]:
    recorder = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            recorder.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            if recorder.status == 200:
                answer = json.dumps({"message": "Annotation added", "id": len(recorder.requests)}).encode()
            else:  # a buggy Grafana that echoes the request's credentials in its error
                answer = json.dumps({"message": f"internal error for {self.headers['Authorization']}"}).encode()
            self.send_response(recorder.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server, thread = serve(Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
