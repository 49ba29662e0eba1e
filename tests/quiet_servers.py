"""Loopback servers for tests that run beside other tests in one process (the parallel tier).

socketserver prints a traceback to stderr when a client drops a connection mid-request (Prometheus
cutting a scrape short, a client timing out). A server a session-scoped fixture keeps running would
print it into whatever test runs at that moment, whose own output checks (no "Traceback") then fail
for something it did not do. These servers log such errors instead.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["QuietHTTPServer", "serve_wsgi"]

log = logging.getLogger(__name__)


class QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("test server: a request from %s failed", client_address, exc_info=True)


class _QuietWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("test WSGI server: a request from %s failed", client_address, exc_info=True)


class _QuietWSGIHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per scrape otherwise
        return


def serve_wsgi(app: Any, host: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
    """``app`` served on ``host`` at a free port, in a daemon thread."""
    server = make_server(host, 0, app, server_class=_QuietWSGIServer, handler_class=_QuietWSGIHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def serve(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> tuple[QuietHTTPServer, threading.Thread]:
    server = QuietHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
