"""A minimal Chrome DevTools Protocol client over --remote-debugging-pipe (no websocket library needed).

Used by the report test to load a page in headless Chromium, record every network request the page makes,
check what the browser rendered, and take a screenshot.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import time


class Browser:
    def __init__(self, chromium: str, profile_dir: str, extra: list[str] | None = None):
        r_in, w_in = os.pipe()    # we write commands -> chromium reads fd 3
        r_out, w_out = os.pipe()  # chromium writes fd 4 -> we read
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-extensions",
                 f"--user-data-dir={profile_dir}", "--remote-debugging-pipe", *(extra or [])]

        def fds():  # in the child: fd 3 = its input, fd 4 = its output (via high fds, so none is clobbered)
            a, b = os.dup(r_in) + 100, os.dup(w_out) + 100
            os.dup2(r_in, a)
            os.dup2(w_out, b)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([chromium, *flags], preexec_fn=fds, pass_fds=(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False)
        os.close(r_in)
        os.close(w_out)
        self.w, self.r = w_in, r_out
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self, timeout: float) -> dict | None:
        end = time.time() + timeout
        while b"\0" not in self.buf:
            left = end - time.time()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.r], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the debugging pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        end = time.time() + timeout
        while time.time() < end:
            m = self._read_message(end - time.time())
            if m is None:
                break
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)
        raise TimeoutError(method)

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        end = time.time() + timeout
        for m in self.events:
            if m.get("method") == method:
                return m
        while time.time() < end:
            m = self._read_message(end - time.time())
            if m is None:
                break
            self.events.append(m)
            if m.get("method") == method:
                return m
        raise TimeoutError(method)

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.w)
        os.close(self.r)


def load_page(chromium: str, url: str, profile_dir: str, width: int = 1280, height: int = 1000,
              offline: bool = False, settle: float = 0.5):
    """Open ``url``; return (requests the page made, rendered facts, full-page PNG bytes).

    ``offline``: the browser has no network at all (DevTools network emulation), as on a machine without one.
    ``settle``: seconds to wait after the load event (scripts that render charts).
    facts: text, figures (img loaded), charts (for each top-level div with an id: svg/canvas rendered)."""
    import base64

    b = Browser(chromium, profile_dir)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        b.send("Network.enable", session=session)
        if offline:
            b.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                        "uploadThroughput": -1}, session=session)
        b.send("Page.enable", session=session)
        b.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                      "mobile": False}, session=session)
        b.events.clear()
        b.send("Page.navigate", {"url": url}, session=session)
        b.wait_event("Page.loadEventFired")
        time.sleep(settle)
        facts = b.send("Runtime.evaluate", {"expression": """JSON.stringify({
            text: document.body.innerText,
            figures: Array.from(document.querySelectorAll('figure')).map(f => {
                const i = f.querySelector('img');
                return {id: f.id, loaded: !!i && i.complete && i.naturalWidth > 0, width: i ? i.naturalWidth : 0};
            }),
            charts: Array.from(document.querySelectorAll('body > div[id]')).map(d => {
                const c = d.querySelector('svg.marks, canvas.marks, svg, canvas');
                const r = c ? c.getBoundingClientRect() : null;
                return {id: d.id, rendered: !!c && r.width > 50 && r.height > 50,
                        marks: d.querySelectorAll('svg .mark-symbol path, svg .mark-line path, svg .mark-rect path').length};
            }),
            height: document.documentElement.scrollHeight})""", "returnByValue": True}, session=session)
        facts = json.loads(facts["result"]["value"])
        shot = b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                  "clip": {"x": 0, "y": 0, "width": width,
                                                           "height": min(facts["height"], 16000), "scale": 1}},
                      session=session)
        requests = [e["params"]["request"]["url"] for e in b.events
                    if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == session]
        return requests, facts, base64.b64decode(shot["data"])
    finally:
        b.close()
