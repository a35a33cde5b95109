"""The status page in a real headless Chromium, and the access rules of the local endpoints, on
status_fixture: the real HttpServer serving a made-up ward (ward_snapshot.h) whose clock stands
still, so every age is known.

- the DOM shows the same data as /api/status, escaped (hostile strings render as text);
- at phone width (390 px) the page has no horizontal overflow and is one column;
- it refreshes itself without script; screenshots land in docs/images when asked;
- HTTPS: every request authenticates (client certificate or Basic against a users file made by
  `vitalgate passwd`), failed logins are audited and limited to 5 a minute (then 429);
- plain HTTP on loopback refuses a wrong Host (421);
- promtool accepts /metrics.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from chromium import Chromium
from conftest import BINARY, SOURCE, wait_until

FIXTURE = os.environ.get("STATUS_FIXTURE", str(Path(BINARY).parents[1] / "tests" / "status_fixture"))
UPDATE_IMAGES = os.environ.get("VG_UPDATE_DOC_IMAGES") == "1"


class Fixture:
    def __init__(self, workdir, *args):
        self.log = open(Path(workdir) / f"fixture-{time.monotonic_ns()}.log", "w+b")
        self.proc = subprocess.Popen([FIXTURE, "--max-seconds", "240", *args], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("port "), (line, self.logs())
        self.port = int(line.split()[1])
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def logs(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def audit(self, count, timeout=10):
        """The audit lines so far, once there are `count` of them (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def fixtures(tmp_path):
    started = []

    def start(*args):
        f = Fixture(tmp_path, *args)
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop()


@pytest.fixture
def browser(tmp_path):
    c = Chromium(tmp_path)
    yield c
    c.close()


def get(port, path, host=None, method="GET", ctx=None, headers=None):
    conn = (http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10) if ctx
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    conn.putrequest(method, path, skip_host=True)
    conn.putheader("Host", host or (f"localhost:{port}" if ctx else f"127.0.0.1:{port}"))
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


# --- what the page must show, computed from /api/status ---------------------------------------

def age(seconds):
    """FormatAge of status_views.h."""
    t = max(0, int(seconds))
    if t < 60:
        return f"{t} s"
    if t < 3600:
        return f"{t // 60} min"
    if t < 86400:
        m = (t % 3600) // 60
        return f"{t // 3600} h" + (f" {m} min" if m else "")
    h = (t % 86400) // 3600
    return f"{t // 86400} d" + (f" {h} h" if h else "")


BIDI = set([0x061C, 0x200E, 0x200F] + list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)))


def visible(text):
    """What the page shows of an outside string: controls and bidi marks as [U+XXXX]."""
    out = []
    for ch in text:
        c = ord(ch)
        if c in BIDI or ((c < 0x20 or 0x7F <= c <= 0x9F) and ch not in "\t\n\r"):
            out.append(f"[U+{c:04X}]")
        else:
            out.append(ch)
    return "".join(out)


def num(v):
    v = round(v * 10) / 10
    return str(int(v)) if v == int(v) else str(v)


EXTRACT = r"""(() => {
  const text = id => { const e = document.getElementById(id); return e ? e.textContent : null; };
  const tables = {};
  for (const section of document.querySelectorAll('main section')) {
    tables[section.id] = [...section.querySelectorAll('tbody tr')].map(tr => {
      const row = {key: tr.dataset.key};
      for (const td of tr.querySelectorAll('td')) row[td.dataset.label] = td.textContent;
      return row;
    });
  }
  return {gateway: text('gateway'), site: text('site'), version: text('version'), uptime: text('uptime'),
          health: text('health'), reasons: [...document.querySelectorAll('#reasons li')].map(e => e.textContent),
          tables, elements: [...document.querySelectorAll('body *')].map(e => e.tagName.toLowerCase())};
})()"""


def expected_rows(status):
    devices = []
    for d in status["devices"]:
        if d["link"] == "up":
            link = "up"
        elif d["intermittent"]:
            link = "down (connects to send)"
        else:
            link = "down"
        devices.append({
            "key": d["id"], "Device": visible(d["id"]),
            "Patient": visible(d["patient"]) if d["patient"] else "(none)",
            "Bed": visible(d["location"]), "Transport": visible(d["transport"]), "Link": link,
            "Last reading": age(d["last_reading_age_s"]) + " ago" if d["last_reading_age_s"] is not None else "never",
            "Battery": num(d["battery_pct"]) + " %" if d["battery_pct"] is not None else "-",
            "Signal": f"{d['rssi_dbm']} dBm" if d["rssi_dbm"] is not None else "-",
            "Decode errors": str(d["decode_errors"])})
    beds = {d["patient"]: d["location"] for d in status["devices"] if d["patient"] and d["location"]}
    alarms = [{
        "key": a["alarm_id"], "Priority": a["priority"],
        "Patient": visible(a["patient"]) if a["patient"] else "(none)",
        "Bed": visible(beds.get(a["patient"], "")) if a["patient"] else "",
        "Device": visible(a["device"]), "Alarm": visible(a["kind"] + (" " + a["what"] if a["what"] and a["what"] != a["kind"] else "")),
        "Message": visible(a["message"]), "Age": age(a["age_s"]),
        "Acknowledged": "by " + visible(a["acknowledged_by"]) if a["acknowledged_by"] or a["state"] == "acknowledged" else "no",
    } for a in status["alarms"]]
    destinations = []
    for d in status["destinations"]:
        oldest = (f"{age(d['oldest_unsent_age_s'])} (limit {age(d['backlog_alarm_s'])})"
                  if d["oldest_unsent_age_s"] is not None else "-")
        destinations.append({
            "key": d["name"], "Destination": visible(d["name"]), "Type": visible(d["type"]),
            "Target": visible(d["target"]),
            "Link": "up" if d["connected"] else ("down: " + visible(d["last_error"]) if d["last_error"] else "down"),
            "Backlog": f"{d['backlog_readings']} readings, {d['backlog_events']} events",
            "Oldest unsent": oldest, "Delivered": f"{d['readings_delivered']} readings",
            "Dead letters": str(d["dead_letters"])})
    certificates = [{"key": c["role"], "Role": visible(c["role"]), "Subject": visible(c["subject"]),
                     "Path": visible(c["path"])} for c in status["certificates"]]
    audit = [{"key": str(a["seq"]), "Time": a["ts"][:10] + " " + a["ts"][11:19] + " UTC",
              "Kind": visible(a["kind"]), "By": visible(a["actor"])} for a in status["audit"]]
    return {"devices": devices, "alarms": alarms, "destinations": destinations,
            "certificates": certificates, "audit": audit}


def check_page_matches_api(page, status):
    assert page["gateway"] == status["gateway"]["id"]
    assert page["site"] == status["gateway"]["site"]
    assert page["version"] == status["gateway"]["version"]
    assert page["uptime"] == age(status["gateway"]["uptime_s"])
    assert page["health"] == status["health"]["status"]
    assert page["reasons"] == [visible(r) for r in status["health"]["reasons"]]
    want = expected_rows(status)
    for section, rows in want.items():
        got = page["tables"][section]
        assert len(got) == len(rows), (section, got)
        for g, w in zip(got, rows):
            for key, value in w.items():
                assert g[key] == value, (section, key, g, w)
    # Certificates: the expiry date and how far away it is.
    for g, c in zip(page["tables"]["certificates"], status["certificates"]):
        assert g["Expires"].startswith(c["not_after"][:10] + " (in " + age(c["expires_in_s"]) + ")"), g
    # Audit details: the same object as in the JSON.
    for g, a in zip(page["tables"]["audit"], status["audit"]):
        if isinstance(a["detail"], dict):
            assert json.loads(g["Detail"]) == a["detail"], g
        else:
            assert g["Detail"] == visible(a["detail"]), g


# --- the page --------------------------------------------------------------------------------

def test_page_shows_the_same_data_as_the_api_at_desktop_and_phone_width(fixtures, browser, tmp_path):
    f = fixtures()
    status_code, headers, body = get(f.port, "/api/status")
    assert status_code == 200 and headers["Content-Type"] == "application/json"
    status = json.loads(body)
    assert status["health"]["status"] == "degraded"  # the ward has a late destination and a device down

    url = f"http://127.0.0.1:{f.port}/"
    browser.open_page(1280, 900)
    browser.navigate(url)
    page = browser.evaluate(EXTRACT)
    check_page_matches_api(page, status)
    assert "script" not in page["elements"]
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1280
    # Two columns on a wide screen: certificates and audit entries side by side.
    lefts = browser.evaluate("[...document.querySelectorAll('main section')].map(s => s.getBoundingClientRect().left)")
    assert len(set(lefts)) == 2, lefts
    wide = browser.screenshot(tmp_path / "status-ward.png")
    assert wide[:8] == b"\x89PNG\r\n\x1a\n"

    # Phone width: no horizontal overflow, one column, the same data.
    browser.open_page(390, 844)
    browser.navigate(url)
    assert browser.evaluate("document.documentElement.scrollWidth") <= 390
    overflowing = browser.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 390.5)"
        ".map(e => e.tagName + ' ' + e.textContent.slice(0, 40))")
    assert overflowing == []
    lefts = browser.evaluate("[...document.querySelectorAll('main section')].map(s => s.getBoundingClientRect().left)")
    assert len(set(lefts)) == 1, lefts
    # Cells are labelled rows on a phone (table headers hidden).
    assert browser.evaluate("getComputedStyle(document.querySelector('thead')).display") == "none"
    check_page_matches_api(browser.evaluate(EXTRACT), status)
    phone = browser.screenshot(tmp_path / "status-phone.png")
    assert phone[:8] == b"\x89PNG\r\n\x1a\n"
    # As a phone sees it (mobile viewport): the layout viewport stays at the device width.
    browser.open_page(390, 844, mobile=True)
    browser.navigate(url)
    assert browser.evaluate("window.innerWidth") == 390

    if UPDATE_IMAGES:
        images = SOURCE / "docs" / "images"
        images.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "status-ward.png", images / "status-ward.png")
        shutil.copy(tmp_path / "status-phone.png", images / "status-phone.png")


def test_page_refreshes_itself_without_script(fixtures, browser):
    f = fixtures()
    browser.open_page(800, 600)
    mark = len(browser.events)
    browser.navigate(f"http://127.0.0.1:{f.port}/")
    first = browser.wait_event("Page.loadEventFired", after=mark)
    second = browser.wait_event("Page.loadEventFired", timeout=12, after=first + 1)
    assert second > first
    assert browser.evaluate("document.scripts.length") == 0


def test_hostile_strings_render_as_text(fixtures, browser):
    f = fixtures("--hostile")
    status = json.loads(get(f.port, "/api/status")[2])
    assert status["alarms"][2]["acknowledged_by"].startswith("<script>")
    browser.open_page(1280, 900)
    browser.navigate(f"http://127.0.0.1:{f.port}/")
    page = browser.evaluate(EXTRACT)
    # No element came from the data: the same tags as the harmless ward's page.
    assert not {"script", "img", "i"} & set(page["elements"])
    check_page_matches_api(page, status)
    alarms = {r["key"]: r for r in page["tables"]["alarms"]}
    assert alarms["a-7e9"]["Acknowledged"] == "by <script>alert('by')</script>\"nurse\""
    assert page["tables"]["audit"][0]["By"] == "[U+202E]evil[U+202C] admin"
    assert "onerror" in page["tables"]["audit"][0]["Detail"]
    devices = {r["key"]: r for r in page["tables"]["devices"]}
    assert devices["ox-1"]["Bed"] == "Bed \"7\" <i>&amp;</i> 'x'"
    # Each outside value is isolated from the direction of its neighbours.
    assert browser.evaluate("document.querySelectorAll('td bdi').length") > 20


# --- access ----------------------------------------------------------------------------------

def test_plain_http_on_loopback_checks_host(fixtures):
    f = fixtures()
    assert get(f.port, "/healthz")[0] == 503  # the ward is degraded: 503 with reasons
    assert get(f.port, "/healthz", host=f"localhost:{f.port}")[0] == 503
    for host in (f"attacker.example:{f.port}", "attacker.example", f"127.0.0.1:{f.port + 1}"):
        code, _, body = get(f.port, "/api/status", host=host)
        assert code == 421, host
        assert b"ward7" not in body


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    subprocess.run([str(SOURCE / "scripts" / "gen-certs.sh"), str(d), "charge-nurse"], check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    return d


def make_users(tmp_path, **users):
    path = tmp_path / "users"
    for name, password in users.items():
        r = subprocess.run([BINARY, "passwd", "--file", str(path), name], input=password + "\n",
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
    return path


def https_fixture(fixtures, pki, users):
    return fixtures("--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"),
                    "--tls-ca", str(pki / "ca.crt"), "--users-file", str(users))


def client_ctx(pki, cert=False):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    return ctx


def basic(user, password):
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_https_needs_authentication_for_every_endpoint(fixtures, pki, tmp_path):
    users = make_users(tmp_path, nurse="s3cret-pass")
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    f = https_fixture(fixtures, pki, users)
    ctx = client_ctx(pki)
    for path in ("/", "/api/status", "/healthz", "/metrics", "/nothing"):
        code, headers, body = get(f.port, path, ctx=ctx)
        assert code == 401, path
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
        assert b"ward7" not in body
    code, _, body = get(f.port, "/api/status", ctx=ctx, headers=basic("nurse", "s3cret-pass"))
    assert code == 200 and json.loads(body)["gateway"]["id"] == "ward7-gw1"
    assert get(f.port, "/metrics", ctx=ctx, headers=basic("nurse", "s3cret-pass"))[0] == 200
    # A client certificate signed by http.tls.ca_file needs no password.
    assert get(f.port, "/healthz", ctx=client_ctx(pki, cert=True))[0] == 503
    lines = f.audit(2)
    assert lines[0].startswith("audit login nurse ") and '"result":"ok"' in lines[0]
    assert lines[1].startswith("audit login charge-nurse ") and '"method":"certificate"' in lines[1]
    # Plain HTTP to the HTTPS port gets nothing.
    with socket.create_connection(("127.0.0.1", f.port), timeout=5) as s:
        s.sendall(f"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{f.port}\r\n\r\n".encode())
        assert b"ward7" not in s.recv(65536)


def test_failed_logins_are_audited_and_rate_limited(fixtures, pki, tmp_path):
    users = make_users(tmp_path, nurse="right-one")
    f = https_fixture(fixtures, pki, users)
    ctx = client_ctx(pki)
    for i in range(5):
        code, _, _ = get(f.port, "/", ctx=ctx, headers=basic("nurse" if i % 2 else "mallory", f"guess{i}"))
        assert code == 401
    code, headers, _ = get(f.port, "/", ctx=ctx, headers=basic("nurse", "right-one"))
    assert code == 429  # even the right password waits: the address is locked out for a minute
    assert 1 <= int(headers["Retry-After"]) <= 60
    lines = f.audit(6)
    failed = [l for l in lines if '"result":"failed"' in l]
    assert len(failed) == 5
    assert '"reason":"unknown user"' in failed[0] and failed[0].startswith("audit login mallory ")
    assert '"reason":"wrong password"' in failed[1] and '"address":"127.0.0.1"' in failed[1]
    assert any('"result":"locked_out"' in l for l in lines)
    assert "guess" not in f.logs() and "guess" not in "".join(lines)  # passwords are never written


def test_a_changed_users_file_is_used_without_a_restart(fixtures, pki, tmp_path):
    users = make_users(tmp_path, nurse="first-pass")
    f = https_fixture(fixtures, pki, users)
    ctx = client_ctx(pki)

    def status(user, password):
        return get(f.port, "/healthz", ctx=ctx, headers=basic(user, password))[0]

    def until(check, what):
        # The file is looked at again at most once a second, on a request that authenticates.
        wait_until(check, 10, interval=0.25, what=what)

    assert status("nurse", "first-pass") == 503
    assert status("doctor", "d-pass") == 401
    # Added: a second user gets in.
    make_users(tmp_path, doctor="d-pass")
    until(lambda: status("nurse", "first-pass") == 503 and "2 user(s)" in f.logs(), "the added user")
    assert status("doctor", "d-pass") == 503
    # Changed: the old password (verified before, so cached) no longer works, the new one does.
    make_users(tmp_path, nurse="second-pass")
    until(lambda: status("doctor", "d-pass") == 503 and f.logs().count("2 user(s)") >= 2,
          "the changed password")
    assert status("nurse", "first-pass") == 401
    assert status("nurse", "second-pass") == 503
    # A broken file keeps the users it had, and says why.
    users.write_text(users.read_text() + "broken line\n")
    until(lambda: status("doctor", "d-pass") == 503 and "keeping the previous users" in f.logs(),
          "the broken file")
    assert status("nurse", "second-pass") == 503
    assert f"{users}:3: expected name:hash" in f.logs()


def test_status_command_over_https(fixtures, pki, tmp_path):
    users = make_users(tmp_path, nurse="s3cret-pass")
    f = https_fixture(fixtures, pki, users)
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pass\n")
    pw.chmod(0o600)
    url = f"https://localhost:{f.port}"
    r = subprocess.run([BINARY, "status", "--url", url, "--ca", str(pki / "ca.crt"), "--user", "nurse",
                        "--password-file", str(pw)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ward7-gw1 (site north wing), vitalgate 0.1.0, up 3 h 12 min: DEGRADED")
    assert "  ! device temp-3: disconnected" in r.stdout
    assert "high  p-001  threshold spo2  \"SpO2 84 % below 85 %\"  2 min  not acknowledged" in r.stdout
    r = subprocess.run([BINARY, "status", "--url", url, "--ca", str(pki / "ca.crt"), "--json", "--user",
                        "nurse", "--password-file", str(pw)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and json.loads(r.stdout)["devices"][3]["id"] == "temp-3"
    # Without credentials: refused, and said so.
    r = subprocess.run([BINARY, "status", "--url", url, "--ca", str(pki / "ca.crt")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "answered 401" in r.stderr
    # A CA that did not sign the server's certificate.
    other = tmp_path / "other"
    subprocess.run([str(SOURCE / "scripts" / "gen-certs.sh"), str(other)], check=True, stdout=subprocess.DEVNULL,
                   timeout=60)
    r = subprocess.run([BINARY, "status", "--url", url, "--ca", str(other / "ca.crt")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "TLS handshake failed" in r.stderr


def test_terminal_view_neutralises_control_characters(fixtures):
    f = fixtures("--hostile")
    r = subprocess.run([BINARY, "status", "--url", f"http://127.0.0.1:{f.port}"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "\u202e" not in r.stdout and "[U+202E]evil[U+202C] admin" in r.stdout
    assert "\x1b" not in r.stdout


# --- metrics ---------------------------------------------------------------------------------

def test_promtool_accepts_the_metrics(fixtures):
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is installed by scripts/install-deps.sh"
    f = fixtures()
    code, _, body = get(f.port, "/metrics")
    assert code == 200
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    text = body.decode()
    assert 'vitalgate_certificate_expiry_seconds{role="mqtt.tls.cert_file",path="/etc/vitalgate/gw.crt"} 1797832800' in text
    assert 'vitalgate_alarms_open{kind="threshold",priority="high"} 1' in text
    assert 'vitalgate_device_battery_percent{device="hr-1"} 76' in text
