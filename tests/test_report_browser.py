"""The report in a real browser: headless Chromium driven over its DevTools protocol.

A report generated from a tree of tables written by the test (tests/test_report_fixtures.py)
is opened in Chromium; the test asserts no console errors or exceptions, that every figure
image loaded with a non-zero size, that clicking a leaderboard header reorders the rows, that
every leaderboard number in the rendered page equals results/metrics.parquet, and saves a
full-page screenshot under the test's tmp dir. Chromium comes from Debian's ``chromium``
package: scripts/install-test-browser finds it or installs it (as root, with apt-get); without
it the test is skipped with the script's reason.

The protocol client is written here (``--remote-debugging-pipe``: NUL-separated JSON messages on
file descriptors 3 and 4), so no driver package is needed.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import stages.figures
import stages.report
from robustlab.report.format import format_count, format_interval, format_percent
from tests.test_report_fixtures import FULL_ARCHS, write_tree

REPO = Path(__file__).resolve().parents[1]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
# one architecture per family and two sweep variants: every figure, few panels
ARCHS = ("rrn_d1-1-1_w1-1-1_k3_r24", "rrn_d2-2-1_w1-1-1_k5_r28", "vit_tiny", "mlp_mixer_tiny")
RUNS = len(ARCHS) * 2 + 1  # standard and pgd_at, plus vit_tiny/pgd_at+clat
WIDTH = 1400


def browser_path() -> str:
    """Chromium's path, installing it when possible; skips the test with the reason if not."""
    done = subprocess.run(
        [str(REPO / "scripts" / "install-test-browser")], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"no headless Chromium: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire() -> None:  # in the child: the protocol's fds 3 (commands) and 4 (replies)
            # copy to fresh numbers first: a pipe end may already be fd 3 or 4, and dup2 onto
            # itself would leave it close-on-exec
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=wire,
            close_fds=False,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self._to_browser)
        os.close(self._from_browser)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    err = self.proc.stderr.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"Chromium closed the pipe:\n{err}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """Send one command and wait for its result (events meanwhile go to ``events``)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 20.0) -> dict[str, Any]:
        """The first event called ``method`` (already received or next)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event


class Page:
    """One tab of the browser, attached in flat mode."""

    def __init__(self, tools: DevTools) -> None:
        self.tools = tools
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(
        self, method: str, params: dict | None = None, timeout: float = 20.0
    ) -> dict[str, Any]:
        return self.tools.send(method, params, self.session, timeout)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element (scrolled into view)."""
        box = self.evaluate(
            f"(function () {{ var e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); var r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries of this tab."""
        out = []
        for event in self.tools.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                out.append(json.dumps(params["args"])[:500])
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append(params["entry"]["text"][:500])
        return out


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A report of four architectures x two techniques plus a CLAT run."""
    root = tmp_path_factory.mktemp("browser")
    tree = write_tree(root, {a: FULL_ARCHS[a] for a in ARCHS}, clat_archs=("vit_tiny",))
    stages.figures.main([*tree.input_args(), "--out-dir", str(root / "figures")])
    stages.report.main([*tree.report_args(), "--out", str(root / "index.html")])
    return root / "index.html", tree.metrics


@pytest.fixture(scope="module")
def page(report: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    tools = DevTools(browser_path(), tmp_path_factory.mktemp("chromium-profile"))
    try:
        tab = Page(tools)
        tab.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        tab.send("Page.navigate", {"url": report[0].as_uri()})
        tools.wait_for("Page.loadEventFired")
        yield tab
    finally:
        tools.close()


def test_page_loads_without_console_errors(page: Page) -> None:
    assert page.evaluate("document.readyState") == "complete"
    assert page.evaluate("document.title") == "robustlab report"
    assert page.errors() == []


def test_every_figure_image_loaded(page: Page, report: tuple[Path, Path]) -> None:
    images = page.evaluate(
        "Array.from(document.images).map(function (i) {"
        " return [i.alt, i.complete, i.naturalWidth, i.naturalHeight,"
        " i.getBoundingClientRect().width]; })"
    )
    figures = sorted(p.stem for p in (report[0].parent / "figures").glob("*.png"))
    assert sorted(i[0] for i in images) == figures and len(figures) == 13
    for alt, complete, width, height, shown in images:
        assert complete and width > 100 and height > 100 and 0 < shown <= WIDTH, alt


def _column(page: Page, key: str) -> list[str]:
    return page.evaluate(
        "(function () { var t = document.getElementById('leaderboard-table');"
        f" var col = t.querySelector('th[data-col=\"{key}\"]').cellIndex;"
        " return Array.from(t.tBodies[0].rows).map(function (r) {"
        " return r.cells[col].getAttribute('data-sort'); }); })()"
    )


def test_clicking_a_header_sorts_the_leaderboard(page: Page) -> None:
    before_runs = page.evaluate(
        "Array.from(document.querySelectorAll('#leaderboard-table tbody tr'))"
        ".map(function (r) { return r.getAttribute('data-run'); })"
    )
    before = [float(v) for v in _column(page, "clean")]
    assert before != sorted(before)  # rows start in run order, not by clean accuracy
    page.click('#leaderboard-table th[data-col="clean"]')
    ascending = [float(v) for v in _column(page, "clean")]
    assert ascending == sorted(before)
    after_runs = page.evaluate(
        "Array.from(document.querySelectorAll('#leaderboard-table tbody tr'))"
        ".map(function (r) { return r.getAttribute('data-run'); })"
    )
    assert after_runs != before_runs and sorted(after_runs) == sorted(before_runs)
    page.click('#leaderboard-table th[data-col="clean"]')
    assert [float(v) for v in _column(page, "clean")] == sorted(before, reverse=True)
    page.click('#leaderboard-table th[data-col="arch"]')
    archs = page.evaluate(
        "Array.from(document.querySelectorAll('#leaderboard-table tbody tr'))"
        ".map(function (r) { return r.cells[1].textContent; })"
    )
    assert archs == sorted(archs)
    assert page.errors() == []


def test_rendered_leaderboard_numbers_equal_the_metrics_table(
    page: Page, report: tuple[Path, Path]
) -> None:
    cells = page.evaluate(
        "Array.from(document.querySelectorAll('#leaderboard-table td[data-metric]'))"
        ".map(function (c) { return [c.parentElement.getAttribute('data-run'),"
        " c.getAttribute('data-metric'), c.getAttribute('data-value'), c.textContent]; })"
    )
    metrics = pd.read_parquet(report[1])
    lookup = {
        (
            "/".join((r.dataset, r.arch, r.technique)),
            r.family,
            r.noise,
            "" if pd.isna(r.level) else repr(float(r.level)),
            r.metric,
        ): r
        for r in metrics.itertuples(index=False)
    }
    runs = {c[0] for c in cells}
    # 3 sizes, clean, 2 attacks x 3 eps + AutoAttack, 3 WCAR, 4 ImageNet-C, 1 extras accuracy,
    # mFP, mFR, 2 system
    assert len(runs) == RUNS and len(cells) == RUNS * 23
    for run, key, value, text in cells:
        family, noise, level, metric = key.split("|")
        row = lookup[(run, family, noise, level, metric)]
        assert float(value) == row.value
        shown = format_count(row.value) if family == "complexity" else format_percent(row.value)
        # the number, then its 95 % interval where it has one
        assert text == shown + format_interval(row.ci_low, row.ci_high)


def test_full_page_screenshot(page: Page, tmp_path: Path) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height > 3000  # every section rendered
    clip = {"x": 0, "y": 0, "width": WIDTH, "height": min(height, 20_000), "scale": 0.5}
    shot = page.send(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip},
        timeout=60,
    )
    path = tmp_path / "report.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    print(f"screenshot: {path}")
