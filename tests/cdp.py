"""A page in real headless Chromium, driven over the DevTools protocol on a pipe (stdlib only).

``--remote-debugging-pipe`` makes Chromium read protocol messages from fd 3 and write them to
fd 4, each a JSON object ended by a NUL byte: no WebDriver, no websocket library, no port. The
tests use it to load a page, collect every failed request and console error, evaluate
JavaScript against the rendered DOM and take a screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    """What loading one page gave: failed requests, console errors, and the live session."""

    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class Chromium:
    """One headless Chromium with one tab; use as a context manager."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 1600, timeout: float = 60.0) -> None:
        exe = find_chromium()
        if exe is None:
            raise RuntimeError("no chromium on PATH")
        self.timeout = timeout
        r_in, self._w = os.pipe()  # we write commands -> chromium's fd 3
        self._r, w_out = os.pipe()  # chromium's fd 4 -> we read

        def fds() -> None:
            os.dup2(r_in, 3)
            os.dup2(w_out, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "--no-first-run", "--disable-background-networking", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, pass_fds=(3, 4))
        os.close(r_in)
        os.close(w_out)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._send({"id": 10**6, "method": "Browser.close"})
        except OSError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)

    def _send(self, msg: dict[str, Any]) -> None:
        os.write(self._w, json.dumps(msg).encode() + b"\0")

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        """Send one command and wait for its answer; events meanwhile go to :attr:`events`."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self._send(msg)
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._next(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, event: str) -> dict[str, Any]:
        for m in self.events:
            if m.get("method") == event:
                return m
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._next(deadline)
            self.events.append(m)
            if m.get("method") == event:
                return m

    def load(self, url: str) -> PageLoad:
        """Navigate, wait for the load event (every image loaded or failed), report what failed."""
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")
        self.evaluate("1")  # let queued events (late failures, console) arrive
        res = PageLoad()
        for m in self.events:
            p = m.get("params", {})
            if m.get("method") == "Network.requestWillBeSent":
                res.requests.append(p["request"]["url"])
            elif m.get("method") == "Network.loadingFailed":
                res.failed.append(f"{p.get('errorText')} ({p.get('requestId')})")
            elif m.get("method") == "Network.responseReceived" and p["response"].get("status", 200) >= 400:
                res.failed.append(f"HTTP {p['response']['status']} {p['response']['url']}")
            elif m.get("method") == "Runtime.exceptionThrown":
                res.console_errors.append(json.dumps(p.get("exceptionDetails", {}))[:300])
            elif m.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                res.console_errors.append(p["entry"].get("text", ""))
        return res

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path
