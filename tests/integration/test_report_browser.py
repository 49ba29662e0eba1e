"""report.html in real headless Chromium (Debian's /usr/bin/chromium), driven over the DevTools protocol.

For PASS, FAIL, INCONCLUSIVE and interrupted run directories (and the trend page): the page
loads with no console error, no CSP violation and no network request beyond the file itself; the
screenshot is not blank; the verdict text is visible in the first screen; charts render; the
page prints to PDF. ``.ci/run`` installs chromium; without it these tests fail (set
DRILL_SKIP_BROWSER=1 to skip them on a machine that cannot have it).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websocket
from PIL import Image, ImageStat

from drillbit import reports
from drillbit.reports.compare import compare
from drillbit.reports.trend import trend
from tests.unit.rundirs import RunSpec, write_run_dir

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars", "--window-size=1280,1600",
         "--remote-debugging-port=0", "--remote-allow-origins=*"]  # fmt: skip


@dataclass
class Loaded:
    url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, CSP and other log errors


class Browser:
    """One headless Chromium, one page, spoken to over the DevTools websocket."""

    def __init__(self, profile: Path) -> None:
        self.proc = subprocess.Popen([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self._id = 0
        self._events: list[dict[str, Any]] = []
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            self._events.append(msg)

    def _wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self._events.append(json.loads(self.ws.recv()))

    def load(self, path: Path) -> Loaded:
        self._events.clear()
        url = path.resolve().as_uri()
        self.call("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired")
        self.call("Runtime.evaluate", expression="1")  # drain: anything logged during load has arrived
        time.sleep(0.3)
        self.call("Runtime.evaluate", expression="1")
        loaded = Loaded(url)
        for e in self._events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Network.requestWillBeSent":
                loaded.requests.append(p["request"]["url"])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                loaded.errors.append(f"console {p['type']}: {p.get('args')}")
            elif m == "Runtime.exceptionThrown":
                loaded.errors.append(f"exception: {p.get('exceptionDetails')}")
            elif m == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                loaded.errors.append(f"log: {p['entry'].get('text')}")
        return loaded

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self) -> Image.Image:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")

    def pdf(self) -> bytes:
        return base64.b64decode(self.call("Page.printToPDF", printBackground=True)["data"])

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("DRILL_SKIP_BROWSER") == "1":
            pytest.skip("DRILL_SKIP_BROWSER=1 and no /usr/bin/chromium")
        pytest.fail("no /usr/bin/chromium: apt-get install -y chromium (or set DRILL_SKIP_BROWSER=1)")
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("runs")
    for kind in ("pass", "fail", "inconclusive", "interrupted"):
        reports.build(write_run_dir(parent, RunSpec(kind=kind, run_id=f"run-{kind}", xss=True)))
    return parent


EXPECTED = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "interrupted": "NO VERDICT"}


def _not_blank(img: Image.Image) -> bool:
    stat = ImageStat.Stat(img)
    return max(stat.stddev) > 20 and len(img.getcolors(maxcolors=1 << 20) or []) > 50


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_report_loads_offline_without_errors(browser: Browser, runs: Path, kind: str) -> None:
    loaded = browser.load(runs / f"run-{kind}" / "report.html")
    assert loaded.errors == []
    assert loaded.requests == [loaded.url]  # the file itself, nothing else


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_verdict_is_visible_in_the_first_screen(browser: Browser, runs: Path, kind: str) -> None:
    browser.load(runs / f"run-{kind}" / "report.html")
    badge = browser.evaluate("""(() => { const b = document.querySelector('#outcome .badge');
        const r = b.getBoundingClientRect(); const s = getComputedStyle(b);
        return {text: b.innerText, top: r.top, height: r.height, width: r.width, visible: s.visibility,
                display: s.display, color: s.backgroundColor, vh: innerHeight}; })()""")
    assert badge["text"] == EXPECTED[kind]
    assert badge["visible"] == "visible" and badge["display"] != "none"
    assert badge["height"] > 10 and badge["width"] > 30 and 0 <= badge["top"] < badge["vh"]


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_screenshot_is_not_blank_and_charts_render(browser: Browser, runs: Path, kind: str) -> None:
    browser.load(runs / f"run-{kind}" / "report.html")
    assert _not_blank(browser.screenshot())
    heights = browser.evaluate("[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().height)")
    assert len(heights) == 1 and heights[0] > 300


def test_script_payload_is_shown_as_text_not_run(browser: Browser, runs: Path) -> None:
    browser.load(runs / "run-fail" / "report.html")
    assert browser.evaluate("document.body.innerText.includes(\"<script>alert('xss')</script>\")")
    assert browser.evaluate("document.querySelectorAll('script:not([type=\"application/json\"])').length") == 0


def test_report_prints_to_pdf_on_several_pages(browser: Browser, runs: Path) -> None:
    browser.load(runs / "run-fail" / "report.html")
    pdf = browser.pdf()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 2


def test_trend_page_loads_offline_without_errors(browser: Browser, runs: Path, tmp_path: Path) -> None:
    page = trend([runs], tmp_path / "trend.html")
    loaded = browser.load(page)
    assert loaded.errors == [] and loaded.requests == [loaded.url]
    assert _not_blank(browser.screenshot())


def test_compare_page_loads_offline_without_errors(browser: Browser, runs: Path, tmp_path: Path) -> None:
    page = tmp_path / "compare.html"
    compare(runs / "run-pass", runs / "run-pass", out=page)
    loaded = browser.load(page)
    assert loaded.errors == [] and loaded.requests == [loaded.url]
    assert browser.evaluate("document.querySelector('#verdict .badge').innerText") == "OK"


def test_a_page_that_reaches_out_is_caught(browser: Browser, tmp_path: Path) -> None:
    """The control: the same checks see the request, or the CSP violation, when a page does reach out."""
    img = '<img src="http://127.0.0.1:9/x.png">'
    open_page, strict_page = tmp_path / "open.html", tmp_path / "strict.html"
    open_page.write_text(f"<!DOCTYPE html><html><body>{img}</body></html>")
    strict_page.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                           f"content=\"default-src 'none'\"></head><body>{img}</body></html>")  # fmt: skip
    assert "http://127.0.0.1:9/x.png" in browser.load(open_page).requests
    assert any("Content Security Policy" in e for e in browser.load(strict_page).errors)
