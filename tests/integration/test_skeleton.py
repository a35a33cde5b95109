"""The walking skeleton, end to end: an exec device feeds jsonl readings through the real
gateway to a real mosquitto with mutual TLS; an MQTT subscriber checks what arrives."""

import json
import signal
import time
from datetime import datetime, timedelta, timezone

from conftest import Subscriber, base_config, wait_until

T0 = datetime(2026, 11, 22, 5, 0, 0, tzinfo=timezone.utc)


def ts(seconds):
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def exec_device(feed, device_id="ext-1", patient="p-001"):
    return {"id": device_id, "patient": patient,
            "transport": {"type": "exec", "command": feed.command(), "restart_min_ms": 100},
            "codec": "jsonl"}


# SpO2 alarms after 2 s below 90 (event time), clears at >= 91; nothing else alarms.
SPO2_ONLY = {
    "thresholds": {m: None for m in ["heart_rate", "pulse_rate", "resp_rate", "bp_systolic",
                                      "bp_diastolic", "bp_mean", "temperature", "glucose"]}
    | {"spo2": {"low": [{"limit": 90, "priority": "medium"}], "hysteresis": 1, "delay_s": 2}},
    "trends": {"spo2_falling": None, "heart_rate_rising": None, "temperature_rising": None},
    "news2": {"enabled": False},
}


def test_every_reading_arrives_once_with_a_stable_id_in_order(broker, subscribe, gateway_factory,
                                                              certs, tmp_path, feed):
    sub = subscribe()
    gw = gateway_factory(base_config(tmp_path, broker.port, certs, [exec_device(feed)],
                                     rules=SPO2_ONLY)).start()
    sent = [{"metric": "heart_rate", "value": 60 + i % 30, "ts": ts(i)} for i in range(200)]
    for i in range(0, 200, 20):
        feed.send(*sent[i:i + 20])
    wait_until(lambda: len(sub.readings()) >= 200, 20, what="200 readings")
    time.sleep(0.5)  # anything duplicated would arrive now
    readings = sub.readings()
    assert len(readings) == 200
    ids = [r["id"] for r in readings]
    assert len(set(ids)) == 200
    assert [r["value"] for r in readings] == [s["value"] for s in sent]
    assert [r["ts"] for r in readings] == [s["ts"] for s in sent]
    for r in readings:
        assert r["device"] == "ext-1" and r["metric"] == "heart_rate" and r["unit"] == "/min"
    msgs = sub.payloads("/readings/p-001")
    assert all(m["gateway"] == "ward7-gw1" and m["patient"] == "p-001" for m in msgs)
    assert gw.stop() == 0


def test_threshold_alert_is_raised_once_and_cleared_once(broker, subscribe, gateway_factory, certs,
                                                         tmp_path, feed):
    sub = subscribe()
    gateway_factory(base_config(tmp_path, broker.port, certs, [exec_device(feed)],
                                rules=SPO2_ONLY)).start()
    values = [97, 96, 88, 87, 86, 85, 86, 87, 90, 90.5, 88, 91, 95, 96]
    feed.send(*[{"metric": "spo2", "value": v, "ts": ts(i)} for i, v in enumerate(values)])
    wait_until(lambda: len(sub.readings()) >= len(values), 20, what="readings")
    wait_until(lambda: len(sub.alerts()) >= 2, 10, what="two alert events")
    time.sleep(0.5)
    alerts = [a for a in sub.alerts() if a["kind"] == "threshold"]
    assert [a["state"] for a in alerts] == ["active", "cleared"], alerts
    raised, cleared = alerts
    assert raised["metric"] == "spo2" and raised["priority"] == "medium"
    assert raised["patient"] == "p-001"
    assert raised["value"] == 86 and raised["limit"] == 90  # 2 s after the first reading below 90
    assert raised["ts"] == ts(4) and raised["raised_ts"] == ts(4)
    assert cleared["ts"] == ts(11) and cleared["raised_ts"] == ts(4)
    assert raised["alarm_id"] == cleared["alarm_id"] and raised["id"] != cleared["id"]
    assert sub.payloads("/alerts/p-001") == sub.alerts()


def test_status_is_retained_online_then_offline_after_sigkill(broker, certs, gateway_factory,
                                                             tmp_path, feed):
    gw = gateway_factory(base_config(tmp_path, broker.port, certs, [exec_device(feed)])).start()
    wait_until(lambda: "connected to broker" in gw.logs(), 10, what="gateway connected")
    time.sleep(0.3)  # the online status is published right after CONNACK
    topic = "vitalgate/v1/ward7-gw1/status"
    first = Subscriber(broker.port, certs, [topic])
    try:
        wait_until(lambda: first.messages, 10, what="retained status")
        t, payload, retained = first.messages[0]
        assert retained, "status must be retained"
        status = json.loads(payload)
        assert status["state"] == "online" and status["version"] and status["ts"]
    finally:
        first.close()
    gw.signal(signal.SIGKILL)
    gw.proc.wait(10)
    # The broker publishes the last will when the connection dies; a new subscriber gets it
    # retained.
    def offline_retained():
        s = Subscriber(broker.port, certs, [topic])
        try:
            wait_until(lambda: s.messages, 5, what="retained status")
            t, payload, retained = s.messages[-1]
            return retained and json.loads(payload)["state"] == "offline"
        finally:
            s.close()
    wait_until(offline_retained, 20, interval=0.5, what="retained offline status (last will)")


def test_sigterm_publishes_offline_and_exits_zero(broker, subscribe, gateway_factory, certs,
                                                  tmp_path, feed):
    sub = subscribe(["vitalgate/v1/ward7-gw1/status"])
    gw = gateway_factory(base_config(tmp_path, broker.port, certs, [exec_device(feed)])).start()
    wait_until(lambda: any(json.loads(p)["state"] == "online" for _, p, _ in sub.messages), 10,
               what="online status")
    assert gw.stop() == 0
    wait_until(lambda: json.loads(sub.messages[-1][1])["state"] == "offline", 10,
               what="offline status")
    assert "shutting down" in gw.logs()


def test_readings_committed_while_the_broker_is_down_arrive_after_a_restart(
        broker, certs, gateway_factory, tmp_path, feed):
    broker.stop()
    cfg = base_config(tmp_path, broker.port, certs, [exec_device(feed)], rules=SPO2_ONLY)
    gw = gateway_factory(cfg).start()
    feed.send(*[{"metric": "spo2", "value": 97, "ts": ts(i)} for i in range(50)])
    wait_until(lambda: "cannot connect" in gw.logs(), 10, what="a failed connection attempt")
    time.sleep(1.0)  # let the store commit
    assert gw.stop() == 0  # does not wait for the unreachable broker
    feed.close()
    broker.start()
    sub = Subscriber(broker.port, certs)
    try:
        gw2 = gateway_factory(cfg).start()
        wait_until(lambda: len(sub.readings()) >= 50, 20, what="backlog delivered after restart")
        time.sleep(0.5)
        readings = sub.readings()
        assert len(readings) == 50
        assert [r["ts"] for r in readings] == [ts(i) for i in range(50)]
        assert len({r["id"] for r in readings}) == 50
        assert gw2.stop() == 0
    finally:
        sub.close()


def test_cmd_ack_acknowledges_an_active_alert(broker, subscribe, gateway_factory, certs, tmp_path,
                                              feed):
    sub = subscribe()
    gateway_factory(base_config(tmp_path, broker.port, certs, [exec_device(feed)],
                                rules=SPO2_ONLY)).start()
    feed.send(*[{"metric": "spo2", "value": 85, "ts": ts(i)} for i in range(4)])
    wait_until(lambda: sub.alerts(), 10, what="an alert")
    active = sub.alerts()[0]
    sub.publish("vitalgate/v1/ward7-gw1/cmd/ack", json.dumps({"alert_id": active["id"], "by": "nurse-7"}))
    wait_until(lambda: len(sub.alerts()) >= 2, 10, what="acknowledged event")
    ack = sub.alerts()[1]
    assert ack["state"] == "acknowledged" and ack["alarm_id"] == active["alarm_id"]
    assert ack["acknowledged_by"] == "nurse-7"
    # Invalid acknowledgements change nothing.
    sub.publish("vitalgate/v1/ward7-gw1/cmd/ack", "not json")
    sub.publish("vitalgate/v1/ward7-gw1/cmd/ack", json.dumps({"alert_id": "nope", "by": "x"}))
    sub.publish("vitalgate/v1/ward7-gw1/cmd/ack", json.dumps({"alert_id": active["id"], "by": "nurse-7"}))
    time.sleep(1.0)
    assert len(sub.alerts()) == 2
