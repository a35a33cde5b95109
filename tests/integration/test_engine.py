"""The rule engine through the real gateway: replay gives the same alerts as the live run, and
SIGHUP reloads rules without losing or duplicating a reading."""

import json
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

from conftest import BINARY, base_config, wait_until

T0 = datetime(2026, 11, 22, 5, 0, 0, tzinfo=timezone.utc)


def ts(seconds):
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def device(feed):
    return {"id": "ext-1", "patient": "p-001", "no_data_s": 3600,
            "transport": {"type": "exec", "command": feed.command()}}


def deteriorating_recording():
    """Two hours of a patient drifting into sepsis and back, every 10 s, BP and temperature
    every minute."""
    lines = []
    for i in range(720):
        s = i * 10
        p = min(1.0, s / 3600.0) if s < 3600 else max(0.0, 2 - s / 3600.0)
        lines.append({"metric": "heart_rate", "value": round(76 + 54 * p), "ts": ts(s)})
        lines.append({"metric": "resp_rate", "value": round(15 + 13 * p), "ts": ts(s)})
        lines.append({"metric": "spo2", "value": round(97 - 8 * p), "ts": ts(s)})
        if i % 6 == 0:
            lines.append({"metric": "bp_systolic", "value": round(124 - 40 * p), "ts": ts(s)})
            lines.append({"metric": "temperature", "value": round(37 + 2.4 * p, 1), "ts": ts(s)})
    return lines


def comparable(alert):
    keys = ("kind", "metric", "state", "priority", "ts", "raised_ts", "value", "limit", "message",
            "score", "risk", "subscores")
    return tuple(json.dumps(alert.get(k), sort_keys=True) for k in keys)


def test_replay_of_a_recording_gives_the_same_alerts_as_the_live_run(
        broker, subscribe, gateway_factory, certs, tmp_path, feed):
    sub = subscribe()
    cfg = base_config(tmp_path, broker.port, certs, [device(feed)])
    gw = gateway_factory(cfg).start()
    recording = deteriorating_recording()
    for i in range(0, len(recording), 200):
        feed.send(*recording[i:i + 200])
    wait_until(lambda: len(sub.readings()) >= len(recording), 60, what="all readings")
    time.sleep(1.0)
    live = [a for a in sub.alerts() if a["kind"] != "technical"]
    kinds = {a["kind"] for a in live}
    assert {"threshold", "trend", "news2"} <= kinds, kinds
    assert any(a["state"] == "cleared" for a in live if a["kind"] == "threshold")

    # 1. Replay what the gateway published on readings/# (a capture of the broker's stream).
    capture = tmp_path / "capture.jsonl"
    capture.write_text("".join(json.dumps(m) + "\n" for m in sub.payloads("/readings/")))
    # 2. Replay the device's own lines (flat readings with the patient added).
    flat = tmp_path / "flat.jsonl"
    flat.write_text("".join(json.dumps(dict(r, patient="p-001")) + "\n" for r in recording))
    for path in (capture, flat):
        out = subprocess.run([BINARY, "replay", "--config", str(gw.config_path), str(path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        replayed = [json.loads(line) for line in out.stdout.splitlines()]
        assert [comparable(a) for a in replayed] == [comparable(a) for a in live], path.name

    summary = subprocess.run([BINARY, "replay", "--config", str(gw.config_path), str(flat),
                              "--summary"], capture_output=True, text=True, timeout=60)
    assert summary.returncode == 0
    active = sum(1 for a in live if a["state"] == "active")
    assert f"total: {active} alarm signals" in summary.stdout, summary.stdout
    assert "p-001" in summary.stdout and "news2" in summary.stdout


def test_replay_rejects_bad_lines_with_their_line_number(tmp_path, certs):
    cfg = base_config(tmp_path, 1883, certs, [], mqtt={"host": "localhost"})
    path = tmp_path / "vitalgate.json"
    path.write_text(json.dumps(cfg))
    rec = tmp_path / "rec.jsonl"
    rec.write_text('{"patient":"p-001","metric":"spo2","value":97,"ts":"2026-11-22T05:00:00Z"}\n'
                   'garbage\n'
                   '{"patient":"p-999","metric":"spo2","value":97,"ts":"2026-11-22T05:00:00Z"}\n')
    out = subprocess.run([BINARY, "replay", "--config", str(path), str(rec)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "rec.jsonl:2: not valid JSON" in out.stderr
    assert "rec.jsonl:3: patient \"p-999\" is not in the configuration" in out.stderr


def test_sighup_reloads_rules_without_losing_or_duplicating_readings(
        broker, subscribe, gateway_factory, certs, tmp_path, feed):
    sub = subscribe()
    only_spo2 = {"thresholds": {"spo2": {"low": [{"limit": 90, "priority": "medium"}],
                                         "delay_s": 0}},
                 "news2": {"enabled": False},
                 "trends": {"spo2_falling": None}}
    cfg = base_config(tmp_path, broker.port, certs, [device(feed)], rules=only_spo2)
    gw = gateway_factory(cfg).start()
    sent = 0

    def send(n, value):
        nonlocal sent
        feed.send(*[{"metric": "spo2", "value": value, "ts": ts(sent + i)} for i in range(n)])
        sent += n

    send(300, 92)
    # Tighten this patient's limit while readings keep flowing.
    cfg["patients"][0]["rules"] = {"thresholds": {"spo2": {"low": [{"limit": 93, "priority": "high"}]}}}
    gw.config_path.write_text(json.dumps(cfg))
    for _ in range(5):
        send(100, 92)
        gw.signal(signal.SIGHUP)
    wait_until(lambda: "rules, patients and devices reloaded" in gw.logs(), 10, what="reload")
    send(100, 92)
    wait_until(lambda: len(sub.readings()) >= sent, 30, what="all readings")
    time.sleep(0.5)
    readings = sub.readings()
    assert len(readings) == sent and len({r["id"] for r in readings}) == sent
    alerts = sub.alerts()
    assert alerts and alerts[0]["priority"] == "high" and alerts[0]["limit"] == 93
    assert len([a for a in alerts if a["state"] == "active"]) == 1

    # A broken file on SIGHUP is refused; the gateway keeps running with its rules.
    gw.config_path.write_text("{ not json")
    gw.signal(signal.SIGHUP)
    wait_until(lambda: "keeping the running configuration" in gw.logs(), 10, what="rejected reload")
    send(10, 97)
    wait_until(lambda: len(sub.readings()) >= sent, 10, what="readings after a rejected reload")
    assert gw.proc.poll() is None
