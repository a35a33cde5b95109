"""Nothing lost: store-and-forward under faults, against a real broker. After each fault every
committed reading arrives, in order per patient; only readings the device sent in the last
instant before a crash are at risk."""

import json
import os
import random
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import (Pacer, Relay, Subscriber, base_config, free_port, outbox_ids,
                      seq_of, wait_until)

PATIENTS = ("p-001", "p-002", "p-003")
QUIET = {"thresholds": {"heart_rate": None}, "news2": {"enabled": False},
         "trends": {"heart_rate_rising": None},
         "technical": {"no_data_s": 3600, "disconnect_alarm_s": 3600}}


def device(feed):
    return {"id": "ext-1", "patient": "p-001", "allowed_patients": ["*"],
            "transport": {"type": "exec", "command": feed.command(), "restart_min_ms": 50}}


def config(tmp_path, port, certs, feed, **extra):
    return base_config(tmp_path, port, certs, [device(feed)], patients=PATIENTS, rules=QUIET,
                       **extra)


def first_deliveries(sub):
    """Readings in the order they first arrived (duplicates after a redelivery removed)."""
    seen, out = set(), []
    for r in sub.readings():
        if r["id"] not in seen:
            seen.add(r["id"])
            out.append(r)
    return out


def assert_in_order_per_patient(readings):
    """The paced readings (heart_rate, numbered in their time stamps) arrive in the order they
    were sent, per patient."""
    last = {}
    for r in readings:
        if r["metric"] != "heart_rate":
            continue
        p = r.get("_patient")
        s = seq_of(r)
        assert s > last.get(p, -1), f"patient {p}: reading {s} arrived after {last.get(p)}"
        last[p] = s


def with_patients(sub):
    out, seen = [], set()
    for m in sub.payloads("/readings/"):
        for r in m["readings"]:
            if r["id"] in seen:
                continue
            seen.add(r["id"])
            out.append(dict(r, _patient=m["patient"]))
    return out


def test_link_cut_while_readings_flow(broker, certs, gateway_factory, tmp_path, feed):
    relay = Relay(broker.port)
    sub = Subscriber(broker.port, certs)
    pacer = None
    try:
        gw = gateway_factory(config(tmp_path, relay.port, certs, feed)).start()
        pacer = Pacer(feed, 400, PATIENTS).start()
        for _ in range(3):
            time.sleep(1.5)
            relay.cut()
            time.sleep(2.0)
            relay.mend()
        time.sleep(1.0)
        pacer.stop()
        sent = len(pacer.sent)
        wait_until(lambda: len(first_deliveries(sub)) >= sent, 60, what=f"{sent} readings")
        readings = with_patients(sub)
        assert len(readings) == sent
        assert {seq_of(r) for r in readings} == {s for s, _ in pacer.sent}
        assert_in_order_per_patient(readings)
        assert "broker link lost" in gw.logs()
        assert gw.stop() == 0
    finally:
        if pacer:
            pacer.stop()
        sub.close()
        relay.close()


def test_twenty_sigkills_while_readings_flow_and_while_the_backlog_drains(
        broker, certs, gateway_factory, tmp_path, feed):
    rng = random.Random(7)
    db = str(tmp_path / "buffer.db")
    relay = Relay(broker.port)  # the outage is on the network; broker and subscriber stay up
    sub = Subscriber(broker.port, certs)
    pacer = Pacer(feed, 200, PATIENTS)
    committed = set()  # ids seen in the outbox after a crash: all must be delivered
    try:
        gw = gateway_factory(config(tmp_path, relay.port, certs, feed)).start()
        pacer.start()
        # Ten kills while readings flow.
        for _ in range(10):
            time.sleep(rng.uniform(0.3, 1.2))
            gw.signal(signal.SIGKILL)
            gw.proc.wait(10)
            committed |= outbox_ids(db)
            gw.start()
        # Build a backlog with the link cut, then ten kills while it drains.
        relay.cut()
        time.sleep(3.0)
        pacer.stop()
        time.sleep(0.5)
        gw.signal(signal.SIGKILL)
        gw.proc.wait(10)
        backlog = outbox_ids(db)
        committed |= backlog
        assert len(backlog) > 300, "expected a backlog while the link was cut"
        relay.mend()
        for _ in range(10):
            gw.start()
            time.sleep(rng.uniform(0.05, 0.4))
            gw.signal(signal.SIGKILL)
            gw.proc.wait(10)
            committed |= outbox_ids(db)
        gw.start()
        wait_until(lambda: committed <= {r["id"] for r in sub.readings()}, 60,
                   what="every committed reading delivered")
        readings = with_patients(sub)
        assert_in_order_per_patient(readings)
        delivered = {seq_of(r) for r in readings}
        lost = [s for s, _ in pacer.sent if s not in delivered]
        # Lost: only what was in flight between the device and the store at a kill (at 200
        # readings/s, a few per kill); never a committed reading (checked above).
        assert len(lost) <= 10 * 20, f"{len(lost)} readings lost in 10 kills: {lost[:20]}"
        assert gw.stop() == 0
    finally:
        pacer.stop()
        sub.close()
        relay.close()


def test_sigterm_mid_drain_exits_promptly_and_loses_nothing(broker, certs, gateway_factory,
                                                            tmp_path, feed):
    db = str(tmp_path / "buffer.db")
    broker.stop()
    cfg = config(tmp_path, broker.port, certs, feed)
    gw = gateway_factory(cfg).start()
    pacer = Pacer(feed, 2000, PATIENTS).start()
    time.sleep(4.0)
    pacer.stop()
    time.sleep(1.0)
    assert gw.stop() == 0
    backlog = outbox_ids(db)
    assert len(backlog) == len(pacer.sent), "SIGTERM must commit everything received"
    broker.start()
    sub = Subscriber(broker.port, certs)
    try:
        gw.start()
        wait_until(lambda: len(first_deliveries(sub)) > 100, 20, what="drain started")
        t0 = time.monotonic()
        assert gw.stop(timeout=10) == 0
        assert time.monotonic() - t0 < 5, "SIGTERM during a drain must exit within a few seconds"
        gw.start()
        wait_until(lambda: backlog <= {r["id"] for r in sub.readings()}, 60, what="the rest")
        assert_in_order_per_patient(with_patients(sub))
        assert gw.stop() == 0
    finally:
        sub.close()


def test_bounded_storage_drops_oldest_readings_keeps_alerts_and_alarms(
        broker, certs, gateway_factory, tmp_path, feed):
    db = str(tmp_path / "buffer.db")
    broker.stop()
    rules = dict(QUIET, thresholds={"heart_rate": None,
                                    "spo2": {"low": [{"limit": 90, "priority": "high"}],
                                             "delay_s": 0}})
    cfg = config(tmp_path, broker.port, certs, feed, storage={"path": db, "max_bytes": 2 * 1048576},
                 http={"listen": f"127.0.0.1:{free_port()}"})
    cfg["rules"] = rules
    gw = gateway_factory(cfg).start()
    feed.send(json.dumps({"metric": "spo2", "value": 80, "ts": "2026-11-22T05:00:00.000Z"}))
    pacer = Pacer(feed, 5000, PATIENTS, start_seq=1000).start()
    wait_until(lambda: "outbox full" in gw.logs(), 60, what="the outbox to fill up")
    time.sleep(1.0)
    pacer.stop()
    metrics = urllib.request.urlopen(f"http://{cfg['http']['listen']}/metrics", timeout=5).read().decode()
    evicted = [l for l in metrics.splitlines() if l.startswith("vitalgate_readings_evicted_total ")]
    assert evicted and int(evicted[0].split()[1]) > 0
    on_disk = os.path.getsize(db) + (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)
    assert on_disk <= 2 * 1048576 * 1.05, f"outbox uses {on_disk} bytes, max_bytes is 2 MiB"
    # Held while the broker comes back and the subscriber subscribes: the alerts go out first,
    # and a gateway that reconnected before the SUBACK would publish them to nobody.
    gw.signal(signal.SIGSTOP)
    try:
        broker.start()
        sub = Subscriber(broker.port, certs)
    finally:
        gw.signal(signal.SIGCONT)
    try:
        wait_until(lambda: len(first_deliveries(sub)) > 1000, 60, what="the backlog")
        alerts = sub.alerts()
        # The SpO2 alarm raised before the outbox filled was kept; the drops raised an alarm.
        assert any(a["kind"] == "threshold" and a["metric"] == "spo2" for a in alerts), alerts
        assert any(a.get("condition") == "readings_dropped" for a in alerts), alerts
        wait_until(lambda: not outbox_ids(db) or len(outbox_ids(db)) == 0, 60, what="drain")
        readings = with_patients(sub)
        assert_in_order_per_patient(readings)
        # What survived is the newest part of what was sent.
        delivered = sorted(seq_of(r) for r in readings if r["metric"] == "heart_rate")
        assert delivered[-1] == pacer.sent[-1][0]
        assert gw.stop() == 0
    finally:
        sub.close()


def test_corrupt_outbox_is_moved_aside_and_reported(broker, subscribe, certs, gateway_factory,
                                                    tmp_path, feed):
    db = tmp_path / "buffer.db"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    sub = subscribe()
    gw = gateway_factory(config(tmp_path, broker.port, certs, feed)).start()
    feed.send(json.dumps({"metric": "heart_rate", "value": 70, "ts": "2026-11-22T05:00:00.000Z"}))
    wait_until(lambda: sub.readings(), 10, what="a reading through the fresh outbox")
    aside = [p for p in os.listdir(tmp_path) if p.startswith("buffer.db.damaged-")]
    assert aside, os.listdir(tmp_path)
    storage = [a for a in sub.alerts() if a.get("condition") == "storage"]
    assert storage and "moved aside" in storage[0]["message"]
    assert storage[0]["kind"] == "technical" and storage[0]["priority"] == "high"
    assert gw.stop() == 0


def test_health_and_metrics_endpoints(broker, certs, gateway_factory, tmp_path, feed):
    listen = f"127.0.0.1:{free_port()}"
    gw = gateway_factory(config(tmp_path, broker.port, certs, feed, http={"listen": listen})).start()
    feed.send(*[json.dumps({"metric": "heart_rate", "value": 70 + i, "ts": f"2026-11-22T05:00:0{i}.000Z"})
                for i in range(5)])
    feed.send("this is not json")
    wait_until(lambda: "vitalgate_readings_delivered_total 5" in
               urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode(), 10,
               what="5 delivered readings in /metrics")
    metrics = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
    assert 'vitalgate_readings_received_total{device="ext-1"} 5' in metrics
    assert 'vitalgate_decode_errors_total{device="ext-1"} 1' in metrics
    assert "vitalgate_broker_connected 1" in metrics
    assert 'vitalgate_publish_latency_seconds_bucket{le="+Inf"}' in metrics
    assert "# TYPE vitalgate_publish_latency_seconds histogram" in metrics
    health = json.loads(urllib.request.urlopen(f"http://{listen}/healthz", timeout=5).read())
    assert health["status"] == "ok" and health["broker"]["connected"] is True
    assert health["devices"][0]["id"] == "ext-1" and health["devices"][0]["link"] == "up"
    assert health["devices"][0]["readings"] == 5
    broker.stop()
    wait_until(lambda: "broker link lost" in gw.logs(), 15, what="link loss")
    try:
        urllib.request.urlopen(f"http://{listen}/healthz", timeout=5)
        raise AssertionError("expected 503 while the broker is down")
    except urllib.error.HTTPError as e:
        assert e.code == 503
        assert json.loads(e.read())["status"] == "degraded"


def test_systemd_unit_exposure_is_at_most_2(tmp_path):
    from conftest import SOURCE
    unit = SOURCE / "systemd" / "vitalgate.service"
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True, timeout=60)
    line = [l for l in out.stdout.splitlines() if "Overall exposure level" in l]
    assert line, out.stdout + out.stderr
    exposure = float(line[0].split(":")[1].split()[0])
    assert exposure <= 2.0, line[0]


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MiB tmpfs for the outbox (needs root, as CI runs)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_keeps_the_daemon_alive_and_alerts_flowing(broker, certs, gateway_factory,
                                                            tmp_path, feed, small_fs):
    db = str(small_fs / "buffer.db")
    relay = Relay(broker.port)
    sub = Subscriber(broker.port, certs)
    rules = dict(QUIET, thresholds={"heart_rate": None,
                                    "spo2": {"low": [{"limit": 90, "priority": "high"}], "delay_s": 0}})
    cfg = config(tmp_path, relay.port, certs, feed, storage={"path": db})  # max_bytes 512 MiB
    cfg["rules"] = rules
    pacer = Pacer(feed, 5000, PATIENTS)
    try:
        gw = gateway_factory(cfg).start()
        relay.cut()
        pacer.start()
        wait_until(lambda: "outbox full" in gw.logs() or "commit failed" in gw.logs(), 90,
                   what="the disk to fill up")
        feed.send(json.dumps({"metric": "spo2", "value": 80, "ts": "2026-11-22T06:00:00.000Z"}))
        time.sleep(1.0)
        pacer.stop()
        assert gw.proc.poll() is None, gw.logs()
        relay.mend()
        wait_until(lambda: any(a.get("metric") == "spo2" for a in sub.alerts()), 30,
                   what="the SpO2 alarm raised with the disk full")
        wait_until(lambda: any(a.get("condition") in ("readings_dropped", "storage")
                               for a in sub.alerts()), 30, what="a technical alarm about the drops")
        wait_until(lambda: len(first_deliveries(sub)) > 1000, 60, what="the backlog")
        time.sleep(2.0)
        assert_in_order_per_patient(with_patients(sub))
        assert gw.stop() == 0
    finally:
        pacer.stop()
        sub.close()
        relay.close()


def test_a_full_disk_evicts_the_oldest_readings_keeps_every_alert_and_delivers_the_rest(
        broker, certs, gateway_factory, tmp_path, feed, small_fs):
    """A 3 MiB file system filling up while the broker is away: the outbox makes room by evicting
    its oldest readings (in small transactions, with the reserve it keeps for this), never an
    alert, and stays durable (no fall back to memory-only delivery)."""
    db = str(small_fs / "buffer.db")
    relay = Relay(broker.port)
    sub = Subscriber(broker.port, certs)
    rules = dict(QUIET, thresholds={"heart_rate": None,
                                    "spo2": {"low": [{"limit": 90, "priority": "high"}], "delay_s": 0}})
    listen = f"127.0.0.1:{free_port()}"
    cfg = config(tmp_path, relay.port, certs, feed, storage={"path": db}, http={"listen": listen})
    cfg["rules"] = rules
    pacer = Pacer(feed, 5000, PATIENTS)
    try:
        gw = gateway_factory(cfg).start()
        relay.cut()
        pacer.start()
        # Alarms raised and cleared while the disk fills.
        for i in range(40):
            feed.send(json.dumps({"metric": "spo2", "value": 80 if i % 2 == 0 else 97,
                                  "ts": f"2026-11-22T06:00:{i:02d}.000Z"}))
            if "dropped the" in gw.logs() and i >= 10:
                break
            time.sleep(0.5)
        wait_until(lambda: "outbox full; dropped the" in gw.logs(), 90, what="eviction on a full disk")
        pacer.stop()
        time.sleep(1.0)
        assert "commit failed" not in gw.logs(), "eviction failed and the store gave up durability"
        assert "released the reserve" in gw.logs()
        kept = outbox_ids(db)
        assert kept, "nothing kept"
        text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
        raised = int([l for l in text.splitlines() if l.startswith("vitalgate_alerts_total ")][0].split()[1])
        relay.mend()
        wait_until(lambda: kept <= {r["id"] for r in sub.readings()}, 90, what="every kept reading")
        wait_until(lambda: len({a["id"] for a in sub.alerts()}) >= raised, 30, what="every alert")
        assert any(a.get("metric") == "spo2" for a in sub.alerts())
        assert gw.stop() == 0
    finally:
        pacer.stop()
        sub.close()
        relay.close()


def test_the_configured_synchronous_mode_reaches_the_store(broker, certs, gateway_factory, tmp_path, feed):
    for mode in ("normal", "full"):
        cfg = config(tmp_path, broker.port, certs, feed, storage={"path": str(tmp_path / f"{mode}.db"),
                                                                  "synchronous": mode})
        gw = gateway_factory(cfg).start()
        # Read back from SQLite by the gateway, not echoed from the config.
        assert f"(synchronous={mode})" in gw.logs(), gw.logs()
        assert gw.stop() == 0


@pytest.fixture
def ext4_fs(tmp_path):
    """A small ext4 file system on a loop device, mounted errors=remount-ro, so a test can turn
    it read-only under the gateway's feet the way a failing disk does (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("loop-mounting a file system needs root")
    image = tmp_path / "ext4.img"
    mnt = tmp_path / "ext4"
    mnt.mkdir()
    subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    r = subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot loop-mount: " + r.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_read_only_file_system_keeps_alerts_and_readings_flowing(broker, certs, gateway_factory,
                                                                 tmp_path, feed, ext4_fs):
    db = str(ext4_fs / "buffer.db")
    sub = Subscriber(broker.port, certs)
    rules = dict(QUIET, thresholds={"heart_rate": None,
                                    "spo2": {"low": [{"limit": 90, "priority": "high"}], "delay_s": 0}})
    cfg = config(tmp_path, broker.port, certs, feed, storage={"path": db})
    cfg["rules"] = rules
    try:
        gw = gateway_factory(cfg).start()
        feed.send(json.dumps({"metric": "heart_rate", "value": 70, "ts": "2026-11-22T05:00:00.000Z"}))
        wait_until(lambda: len(sub.readings()) == 1, 10, what="a first reading")
        # The kernel turns the file system read-only, as on an I/O error.
        dev = os.path.basename(subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(ext4_fs)],
                                              capture_output=True, text=True).stdout.strip())
        with open(f"/sys/fs/ext4/{dev}/trigger_fs_error", "w") as f:
            f.write("1")
        feed.send(json.dumps({"metric": "spo2", "value": 80, "ts": "2026-11-22T05:00:01.000Z"}))
        # The alarm must not wait for the disk.
        wait_until(lambda: any(a.get("metric") == "spo2" for a in sub.alerts()), 10,
                   what="the SpO2 alarm while the outbox is read-only")
        wait_until(lambda: any(a.get("condition") == "storage" and a["state"] == "active"
                               for a in sub.alerts()), 10, what="the storage alarm")
        feed.send(*[json.dumps({"metric": "heart_rate", "value": 71, "ts": f"2026-11-22T05:00:{10 + i}.000Z"})
                    for i in range(20)])
        wait_until(lambda: len({r["id"] for r in sub.readings()}) >= 22, 20,
                   what="readings forwarded from memory")
        assert gw.proc.poll() is None
        assert gw.stop() == 0
    finally:
        sub.close()
