"""The daemon's health verdict and audit trail, through the real daemon and a real broker:
/healthz goes degraded while a device is silent or disconnected and back when it returns;
`vitalgate audit verify` finds an edited and a deleted audit row; audit events reach the
broker after an outage, in order."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import urllib.error
import urllib.request

from conftest import BINARY, Relay, Subscriber, base_config, free_port, wait_until


def healthz(port):
    """(status code, body) of GET /healthz."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def exec_device(feed, **transport):
    t = {"type": "exec", "command": feed.command(), "restart_min_ms": 50}
    t.update(transport)
    return {"id": "ext-1", "patient": "p-001", "transport": t}


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_healthz_degrades_while_a_device_is_silent_or_gone_and_recovers(
        tmp_path, broker, certs, gateway_factory, feed):
    port = free_port()
    cfg = base_config(tmp_path, broker.port, certs,
                      [exec_device(feed, restart_min_ms=4000, restart_max_ms=4000)],
                      rules={"technical": {"no_data_s": 3, "disconnect_alarm_s": 3600}},
                      http={"listen": f"127.0.0.1:{port}"})
    gw = gateway_factory(cfg).start()

    feed.send({"metric": "heart_rate", "value": 70})
    wait_until(lambda: healthz(port)[0] == 200, 10, what="healthy with a fresh reading")
    code, body = healthz(port)
    assert body["status"] == "ok" and body["reasons"] == []

    # Silent past its no-data time: degraded, naming the device and the reason.
    wait_until(lambda: healthz(port)[0] == 503, 10, what="degraded by silence")
    code, body = healthz(port)
    assert body["status"] == "degraded"
    assert any(r.startswith("device ext-1: no reading for") for r in body["reasons"]), body

    feed.send({"metric": "heart_rate", "value": 71})
    wait_until(lambda: healthz(port)[0] == 200, 10, what="healthy again after a reading")

    # The device's process dies: disconnected until the transport restarts it (4 s).
    for child in children(gw.proc.pid):
        os.kill(child, signal.SIGKILL)
    wait_until(lambda: any("device ext-1: disconnected" in r for r in healthz(port)[1]["reasons"]),
               3, what="degraded by the lost link")
    assert healthz(port)[0] == 503
    wait_until(lambda: healthz(port)[1]["devices"][0].get("link") == "up", 15,
               what="the link restarted")
    feed.close()
    feed.send({"metric": "heart_rate", "value": 72})
    wait_until(lambda: healthz(port)[0] == 200, 10, what="healthy after the device returned")
    assert gw.stop() == 0


def reload_with(gw, cfg, site):
    cfg["gateway"]["site"] = site
    gw.config_path.write_text(json.dumps(cfg))
    before = gw.logs().count("reload")
    gw.signal(signal.SIGHUP)
    wait_until(lambda: gw.logs().count("reload") > before, 10, what="the reload")


def edit(db, sql, *args):
    """One statement on the store, committed and closed (no WAL left behind)."""
    c = sqlite3.connect(db)
    try:
        c.execute(sql, args)
        c.commit()
    finally:
        c.close()


def restore(pristine, db):
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(db) + suffix):
            os.unlink(str(db) + suffix)
    shutil.copy(pristine, db)


def audit_verify(cfg_path):
    return subprocess.run([BINARY, "audit", "verify", "--config", str(cfg_path)],
                          capture_output=True, text=True, timeout=30)


def test_audit_verify_detects_an_edited_and_a_deleted_entry(tmp_path, broker, certs, gateway_factory, feed):
    cfg = base_config(tmp_path, broker.port, certs, [exec_device(feed)],
                      rules={"technical": {"no_data_s": 3600, "disconnect_alarm_s": 3600}})
    gw = gateway_factory(cfg).start()
    for site in ("ward-a", "ward-b", "ward-c"):
        reload_with(gw, cfg, site)
    assert gw.stop() == 0

    db = tmp_path / "buffer.db"
    c = sqlite3.connect(db)
    rows = c.execute("SELECT seq, kind, detail FROM audit_log ORDER BY seq").fetchall()
    c.close()
    reloads = [r for r in rows if r[1] == "reload"]
    assert len(reloads) >= 3, rows
    # The reload entry names the hashes of the configuration before and after.
    detail = json.loads(reloads[-1][2])
    assert detail["config_before"] != detail["config_after"], detail
    assert all(len(detail[k]) == 64 for k in ("config_before", "config_after")), detail

    ok = audit_verify(gw.config_path)
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout and f"{len(rows)} entries" in ok.stdout

    pristine = tmp_path / "pristine.db"
    shutil.copy(db, pristine)
    middle = rows[len(rows) // 2][0]

    # An edited row: its hash no longer matches what it says.
    edit(db, "UPDATE audit_log SET actor = 'nobody' WHERE seq = ?", middle)
    bad = audit_verify(gw.config_path)
    assert bad.returncode == 1, bad.stdout
    assert "broken" in bad.stderr and str(middle) in bad.stderr, bad.stderr

    # A deleted row in the middle: the next one's link breaks.
    restore(pristine, db)
    edit(db, "DELETE FROM audit_log WHERE seq = ?", middle)
    bad = audit_verify(gw.config_path)
    assert bad.returncode == 1 and "broken" in bad.stderr, bad.stderr

    # The newest row deleted: nothing links to it, the recorded head still names it.
    restore(pristine, db)
    edit(db, "DELETE FROM audit_log WHERE seq = ?", rows[-1][0])
    bad = audit_verify(gw.config_path)
    assert bad.returncode == 1 and "missing" in bad.stderr, bad.stderr

    restore(pristine, db)
    assert audit_verify(gw.config_path).returncode == 0


def test_audit_events_made_during_an_outage_arrive_after_it_in_order(
        tmp_path, broker, certs, gateway_factory, feed):
    relay = Relay(broker.port)  # the outage is on the network; broker and subscriber stay up
    sub = Subscriber(broker.port, certs, topics=("vitalgate/v1/ward7-gw1/audit",))
    try:
        cfg = base_config(tmp_path, relay.port, certs, [exec_device(feed)],
                          rules={"technical": {"no_data_s": 3600, "disconnect_alarm_s": 3600}})
        gw = gateway_factory(cfg).start()
        reload_with(gw, cfg, "before-outage")
        wait_until(lambda: len(sub.payloads("/audit")) >= 1, 10, what="the first audit event")
        delivered = len(sub.payloads("/audit"))

        relay.cut()
        for site in ("outage-1", "outage-2"):
            reload_with(gw, cfg, site)
        # Nothing of the outage can have reached the broker.
        assert len(sub.payloads("/audit")) == delivered
        relay.mend()

        wait_until(lambda: len({e["seq"] for e in sub.payloads("/audit") if e["kind"] == "reload"}) >= 3, 20,
                   what="the audit events of the outage")
        # At least once: an event in flight when the link was cut comes again, the same event.
        events, seen = [], {}
        for e in sub.payloads("/audit"):
            if e["seq"] in seen:
                assert seen[e["seq"]] == e, (seen[e["seq"]], e)
                continue
            seen[e["seq"]] = e
            if e["kind"] == "reload":
                events.append(e)
        seqs = [e["seq"] for e in events]
        assert len(seqs) >= 3 and seqs == sorted(seqs), seqs
        # Each event carries its place in the hash chain: its prev is the hash before it.
        by_seq = {e["seq"]: e for e in sub.payloads("/audit")}
        for e in events:
            assert len(e["hash"]) == 64, e
            if e["seq"] - 1 in by_seq:
                assert e["prev"] == by_seq[e["seq"] - 1]["hash"], (e, by_seq[e["seq"] - 1])
        assert gw.stop() == 0
    finally:
        sub.close()
        relay.close()
