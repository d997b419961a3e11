"""The page of `charrnn serve` in headless Chromium, driven over the DevTools protocol:
type a prompt, watch the text stream in, stop it; colour pasted text by surprisal.
Skipped where no Chromium is installed (.ci/run installs Debian's).

    CHARRNN_SCREENSHOT=docs/serve-page.png pytest tests/test_serve_page.py

also saves the screenshot the docs show (of the model in $CHARRNN_MODEL, else the
tiny test model)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest
from test_browser import png_pixels

from charrnn.serve.app import serve
from charrnn.serve.schema import Limits

websockets = pytest.importorskip("websockets.sync.client")
BROWSER = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium found")


class Tab:
    """One page of a headless Chromium, spoken to over the DevTools protocol."""

    def __init__(self, url: str, profile):
        self.process = subprocess.Popen(
            [
                BROWSER,
                "--headless",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--window-size=1100,900",
                f"--user-data-dir={profile}",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert time.monotonic() < deadline, "Chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = []
        while not targets:
            assert time.monotonic() < deadline, "no page in Chromium"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                targets = [t for t in json.load(r) if t["type"] == "page"]
            time.sleep(0.1)
        self.socket = websockets.connect(targets[0]["webSocketDebuggerUrl"], max_size=2**26)
        self.socket.__enter__()
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def js(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 20):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.js(
                f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()"
            )
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"never true: {expression}")

    def close(self):
        self.socket.__exit__(None, None, None)
        self.process.terminate()
        self.process.wait(10)


def test_the_page_writes_stops_and_colours(tiny_run, tmp_path):
    started, ready = {}, threading.Event()

    def on_ready(uvicorn_server, port):
        started.update(server=uvicorn_server, port=port)
        ready.set()

    model = os.environ.get("CHARRNN_MODEL") or str(tiny_run[0])
    limits = Limits(max_tokens=1_000_000)
    thread = threading.Thread(
        target=serve, args=([model], "127.0.0.1", 0, limits), kwargs={"ready": on_ready}
    )
    thread.daemon = True
    thread.start()
    assert ready.wait(60)
    url = f"http://127.0.0.1:{started['port']}/"
    tab = Tab(url, tmp_path / "profile")
    try:
        tab.wait_for("document.querySelector('#model').options.length > 0")
        # Write: a long request, so that it is still streaming when looked at.
        tab.js(
            "document.querySelector('#prompt').value = 'First';"
            "document.querySelector('#max_tokens').value = 1000000;"
            "document.querySelector('#start').click()"
        )
        tab.wait_for("document.querySelector('#output').textContent.length > 300")
        assert tab.js("!document.querySelector('#stop-button').disabled")  # still streaming
        tab.js("document.querySelector('#stop-button').click()")
        status = tab.wait_for(
            "document.querySelector('#status').textContent.startsWith('stopped') &&"
            "document.querySelector('#status').textContent"
        )
        assert "characters" in status
        text = tab.js("document.querySelector('#output').textContent")
        assert text.startswith("First") and len(text) > 300
        # The server frees the rows at its next step.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "v1/stats", timeout=5) as r:
                stats = json.load(r)
            if stats["rows_active"] == 0:
                break
            time.sleep(0.05)
        assert stats["rows_active"] == 0 and stats["rows_cancelled"] >= 1
        # Score: pasted text coloured character by character.
        pasted = "First Citizen:\nSpeak, speak."
        tab.js(
            "document.querySelector('#tab-score').click();"
            f"document.querySelector('#score-text').value = {json.dumps(pasted)};"
            "document.querySelector('#score-button').click()"
        )
        coloured = tab.wait_for(
            "[...document.querySelectorAll('#colored span')].filter(s => s.style.background).length"
        )
        assert coloured >= len(pasted) - 2  # the first character may not be predicted
        assert "bits per character" in tab.js("document.querySelector('#score-status').textContent")
        # The model's facts.
        tab.js("document.querySelector('#tab-facts').click()")
        assert tab.wait_for("document.querySelector('#facts-table').rows.length") >= 5
        tab.js("document.querySelector('#tab-write').click()")
        shot = base64.b64decode(tab.call("Page.captureScreenshot", format="png")["data"])
        width, height, pixels = png_pixels(shot)
        assert width > 500 and height > 400 and len(set(pixels)) > 10
        target = os.environ.get("CHARRNN_SCREENSHOT")
        if target:
            with open(target, "wb") as f:
                f.write(shot)
    finally:
        tab.close()
        started["server"].should_exit = True
        thread.join(10)
