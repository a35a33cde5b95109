"""A headless Chromium (Debian's /usr/bin/chromium) driven over the DevTools protocol through
--remote-debugging-pipe: file descriptors 3 (commands in) and 4 (answers out) carry JSON
messages ended by NUL. Python standard library only. Every wait has a deadline."""

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import time

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


class ChromiumError(Exception):
    pass


class Chromium:
    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.profile = os.path.join(self.workdir, "chromium-profile")
        os.makedirs(self.profile, exist_ok=True)
        self.log_path = os.path.join(self.workdir, "chromium.log")
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Out of the way of 3 and 4 before they are put there in the child.
        high_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 100)
        high_w = fcntl.fcntl(res_w, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(cmd_r)
        os.close(res_w)
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--hide-scrollbars", "--font-render-hinting=none", "--force-color-profile=srgb",
                f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"]
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, log, 1),
                   (os.POSIX_SPAWN_DUP2, log, 2), (os.POSIX_SPAWN_DUP2, high_r, 3),
                   (os.POSIX_SPAWN_DUP2, high_w, 4)]
        self.pid = os.posix_spawn(CHROMIUM, args, dict(os.environ), file_actions=actions, setsid=True)
        for fd in (high_r, high_w, log, devnull):
            os.close(fd)
        self.out = cmd_w
        self.inp = res_r
        self.buffer = b""
        self.next_id = 1
        self.events = []
        self.session = None

    # --- protocol ---

    def _send(self, method, params=None, session=None):
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.next_id += 1
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.out, data)
            data = data[n:]
        return msg["id"]

    def _read_message(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError("no answer from chromium in time; see " + self.log_path)
            ready, _, _ = select.select([self.inp], [], [], left)
            if ready:
                chunk = os.read(self.inp, 1 << 20)
                if not chunk:
                    raise ChromiumError("chromium closed its pipe; see " + self.log_path)
                self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, timeout=30, session=True):
        sid = self.session if session else None
        want = self._send(method, params, sid)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_message(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise ChromiumError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method, timeout=30, after=0):
        """The first event `method` at index >= after in the events seen so far or to come."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(after, len(self.events)):
                if self.events[i]["method"] == method:
                    return i
            msg = self._read_message(deadline)
            if "method" in msg:
                self.events.append(msg)

    # --- pages ---

    def open_page(self, width, height, mobile=False):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def navigate(self, url, timeout=30):
        mark = len(self.events)
        result = self.call("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise ChromiumError(f"navigate {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout=timeout, after=mark)

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise ChromiumError(f"evaluate: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path, full_page=True):
        params = {"format": "png"}
        if full_page:
            m = self.call("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def close(self):
        try:
            self._send("Browser.close")
        except OSError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        for fd in (self.out, self.inp):
            try:
                os.close(fd)
            except OSError:
                pass
