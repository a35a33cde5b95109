"""The local HTTP endpoints of the real daemon: they stay answerable under a flood of idle
connections with the daemon's open-file limit at 64; HEAD and the refusals (400, 405, 413, 431,
421) are answered before the connection closes; `vitalgate status` prints /api/status;
`vitalgate check` refuses an unprotected listener beyond loopback; `vitalgate passwd` writes
the users file; promtool accepts /metrics."""

import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import time

import pytest

from conftest import BINARY, Gateway, base_config, free_port, wait_until

QUIET = {"technical": {"no_data_s": 3600, "disconnect_alarm_s": 3600}}


def device(feed):
    return {"id": "ext-1", "patient": "p-001",
            "transport": {"type": "exec", "command": feed.command(), "restart_min_ms": 50}}


def raw(port, request, timeout=5):
    """Sends `request` as bytes and reads until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return out


def status_of(response):
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def get(port, path, method="GET", extra=b""):
    return raw(port, f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode() + extra + b"\r\n")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


@pytest.fixture
def daemon(tmp_path, broker, certs, feed):
    """Starts vitalgate with its http listener, optionally under a lower open-file limit."""
    procs = []

    def start(nofile=None):
        port = free_port()
        cfg = base_config(tmp_path, broker.port, certs, [device(feed)], rules=QUIET,
                          http={"listen": f"127.0.0.1:{port}"})
        gw = Gateway(tmp_path, cfg)
        cmd = [BINARY, "run", "--config", str(gw.config_path)]
        if nofile:
            cmd = ["prlimit", f"--nofile={nofile}:{nofile}", "--"] + cmd
        gw.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(gw.log, "ab"))
        procs.append(gw)
        wait_until(lambda: "running: gateway" in gw.logs() or gw.proc.poll() is not None, 20,
                   what="vitalgate to start")
        assert gw.proc.poll() is None, gw.logs()
        feed.send(json.dumps({"metric": "heart_rate", "value": 70}))
        wait_until(lambda: b'"link":"up"' in get(port, "/healthz"), 10, what="the device link")
        return gw, port

    yield start
    for gw in procs:
        if gw.proc.poll() is None:
            gw.stop()


def test_idle_connections_under_a_low_file_limit_leave_healthz_answering(daemon):
    gw, port = daemon(nofile=64)
    with open(f"/proc/{gw.proc.pid}/limits") as f:
        assert any(l.startswith("Max open files") and l.split()[3] == "64" for l in f)
    idle = []
    try:
        for _ in range(120):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            idle.append(s)
        # Every connection completed (accepted, or waiting in the listen queue).
        pending = list(idle)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], pending, [], 0.5)
            pending = [s for s in pending if s not in writable]
        assert not pending
        time.sleep(0.5)  # let the daemon work through its accept queue

        timings = []
        for _ in range(7):
            start = time.monotonic()
            r = get(port, "/healthz")
            timings.append(time.monotonic() - start)
            assert status_of(r) == 200, r[:200]
            assert json.loads(r.split(b"\r\n\r\n", 1)[1])["status"] == "ok"
        assert statistics.median(timings) < 0.050, timings
        assert max(timings) < 0.5, timings

        # The idle connections are still open on our side: the daemon must not spin.
        ticks_per_s = os.sysconf("SC_CLK_TCK")
        before, t0 = cpu_ticks(gw.proc.pid), time.monotonic()
        time.sleep(3)
        used = (cpu_ticks(gw.proc.pid) - before) / ticks_per_s / (time.monotonic() - t0)
        assert used < 0.05, f"daemon used {used:.1%} CPU with idle connections open"
    finally:
        for s in idle:
            s.close()
    assert status_of(get(port, "/healthz")) == 200
    # Accept errors, if any, were logged a few times at most, not once per attempt.
    assert gw.logs().count("accepting a connection failed") <= 3
    assert gw.stop() == 0


def test_head_and_refusals_are_answered_before_closing(daemon):
    _, port = daemon()
    r = get(port, "/metrics", "HEAD")
    assert status_of(r) == 200
    head, _, body = r.partition(b"\r\n\r\n")
    length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    assert length and int(length[0].split(b":")[1]) > 1000
    assert body == b""

    r = get(port, "/healthz", "POST", b"Content-Length: 2\r\n")
    assert status_of(r) == 405 and b"\r\nAllow: GET, HEAD\r\n" in r
    r = get(port, "/healthz", "DELETE")
    assert status_of(r) == 405
    r = raw(port, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 5\r\n\r\nhello".encode())
    assert status_of(r) == 413
    r = get(port, "/", extra=b"Transfer-Encoding: chunked\r\n")
    assert status_of(r) == 413
    r = get(port, "/", extra=b"X-Big: " + b"x" * 10000 + b"\r\n")
    assert status_of(r) == 431
    r = raw(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40)  # a TLS hello
    assert status_of(r) == 400
    r = raw(port, b"GET / HTTP/1.1\r\nHost\r\n\r\n")
    assert status_of(r) == 400
    r = get(port, "/nothing-here")
    assert status_of(r) == 404
    r = raw(port, f"GET /api/status HTTP/1.1\r\nHost: rebound.example:{port}\r\n\r\n".encode())
    assert status_of(r) == 421 and b"ward7" not in r


def test_status_command_prints_the_running_gateway(daemon):
    _, port = daemon()
    r = subprocess.run([BINARY, "status", "--url", f"http://127.0.0.1:{port}"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ward7-gw1 (site test), vitalgate ")
    assert "\n  ext-1  " in r.stdout and "  exec  link up  last reading " in r.stdout
    r = subprocess.run([BINARY, "status", "--url", f"http://localhost:{port}", "--json"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["gateway"]["id"] == "ward7-gw1" and doc["devices"][0]["id"] == "ext-1"
    assert doc["destinations"][0]["name"] == "mqtt" and doc["destinations"][0]["connected"] is True

    closed = free_port()
    r = subprocess.run([BINARY, "status", "--url", f"http://127.0.0.1:{closed}"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "cannot connect" in r.stderr
    for args, message in ((["--url", "ftp://x"], "expected http://HOST:PORT"),
                          (["--url", "http://192.0.2.1:9102"], "plain http:// only to"),
                          (["--url", "https://127.0.0.1:9102"], "--ca FILE is required"),
                          (["--user", "a"], "go together"),
                          (["--user", "a", "--password-file", "/nonexistent"], "passwords are sent only over https://"),
                          (["--bogus"], 'unexpected argument "--bogus"')):
        r = subprocess.run([BINARY, "status", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)


def test_promtool_accepts_the_daemons_metrics(daemon):
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is installed by scripts/install-deps.sh"
    _, port = daemon()
    body = get(port, "/metrics").split(b"\r\n\r\n", 1)[1]
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    assert b"vitalgate_build_info{version=" in body
    assert b'vitalgate_device_link_up{device="ext-1"} 1' in body


# --- check and passwd ------------------------------------------------------------------------

def check(tmp_path, certs, http):
    cfg = base_config(tmp_path, 8883, certs, [], http=http)
    path = tmp_path / "check.json"
    path.write_text(json.dumps(cfg))
    return subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True, timeout=30)


def test_check_refuses_an_unprotected_listener_beyond_loopback(tmp_path, certs):
    r = check(tmp_path, certs, {"listen": "0.0.0.0:9102"})
    assert r.returncode == 2
    assert 'http.listen: "0.0.0.0:9102" is beyond loopback' in r.stderr
    r = check(tmp_path, certs, {"listen": "[::]:9102"})
    assert r.returncode == 2 and "http.listen" in r.stderr
    tls = {"cert_file": str(certs / "server.crt"), "key_file": str(certs / "server.key")}
    r = check(tmp_path, certs, {"listen": "0.0.0.0:9102", "tls": tls})
    assert r.returncode == 2 and "http.tls: every request over HTTPS must authenticate" in r.stderr
    users = tmp_path / "users"
    subprocess.run([BINARY, "passwd", "--file", str(users), "nurse"], input="pw\n", text=True, check=True,
                   timeout=30, capture_output=True)
    r = check(tmp_path, certs, {"listen": "0.0.0.0:9102", "tls": tls, "users_file": str(users)})
    assert r.returncode == 0, r.stderr
    r = check(tmp_path, certs, {"listen": "0.0.0.0:9102", "tls": {**tls, "ca_file": str(certs / "ca.crt")}})
    assert r.returncode == 0, r.stderr
    users.chmod(0o644)
    r = check(tmp_path, certs, {"listen": "0.0.0.0:9102", "tls": tls, "users_file": str(users)})
    assert r.returncode != 0 and "http.users_file" in r.stderr and "chmod 600" in r.stderr
    users.chmod(0o600)
    users.write_text("nurse:plaintext\n")
    r = check(tmp_path, certs, {"listen": "0.0.0.0:9102", "tls": tls, "users_file": str(users)})
    assert r.returncode == 2 and f"{users}:1" in r.stderr and "yescrypt" in r.stderr
    r = check(tmp_path, certs, {"listen": "127.0.0.1:9102", "users_file": str(users)})
    assert r.returncode == 2 and "http.users_file: passwords are accepted only over HTTPS" in r.stderr
    r = check(tmp_path, certs, {"listen": "127.0.0.1:9102", "tls": {"cert_file": str(certs / "server.crt")}})
    assert r.returncode == 2 and "http.tls.key_file: required key is missing" in r.stderr


def test_passwd_writes_a_secret_users_file(tmp_path):
    users = tmp_path / "users"
    run = lambda *args, pw="first-pass\n": subprocess.run(  # noqa: E731
        [BINARY, "passwd", *args], input=pw, capture_output=True, text=True, timeout=30)
    r = run("--file", str(users), "nurse.kim")
    assert r.returncode == 0 and "added nurse.kim" in r.stderr
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    r = run("--file", str(users), "--scheme", "bcrypt", "admin")
    assert r.returncode == 0
    first = users.read_text().splitlines()
    assert first[0].startswith("nurse.kim:$y$") and first[1].startswith("admin:$2b$")
    r = run("--file", str(users), "nurse.kim", pw="second-pass\n")
    assert r.returncode == 0 and "changed the password of nurse.kim" in r.stderr
    second = users.read_text().splitlines()
    assert second[1] == first[1] and second[0] != first[0] and second[0].startswith("nurse.kim:$y$")
    assert "first-pass" not in users.read_text() and "second-pass" not in users.read_text()
    for args, pw, message in ((("--file", str(users), "bad name"), "x\n", "must be 1-64"),
                              (("--file", str(users), "a"), "", "no password"),
                              (("--file", str(users), "a"), "\n", "must not be empty"),
                              (("--file", str(users), "--scheme", "md5", "a"), "x\n", "yescrypt or bcrypt"),
                              (("a",), "x\n", "usage")):
        r = run(*args, pw=pw)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
    users.write_text("broken line\n")
    r = run("--file", str(users), "a")
    assert r.returncode == 2 and f"{users}:1: expected name:hash" in r.stderr
