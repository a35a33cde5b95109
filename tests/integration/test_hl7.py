"""The hl7v2 destination's MLLP link against a receiver that parses with python-hl7.

hl7_driver (C++) drives the real link the way the daemon does; mllp_server.py receives over
MLLP (plain or TLS on loopback), parses every message with python-hl7 and answers per mode.
The expectations below are written from the IHE PCD profiles and IEEE 11073 tables, not from
vitalgate's renderer."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SOURCE, certs  # noqa: E402,F401  (certs is a fixture)
from mllp_server import MllpServer  # noqa: E402

DRIVER = os.environ.get("HL7_DRIVER", str(SOURCE / "build" / "asan" / "tests" / "hl7_driver"))

PCD01 = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
PCD04 = "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.4.1^ISO"
BLE_EUI64 = "C0FFEEFFFE000001"

# metric: (OBX-3.1, OBX-2, value in the reading, value as sent, OBX-6.1, OBX-4)
# Devices are numbered in the order they first appear: the serial monitor (mon-2) is MDS 1,
# the BLE oximeter (ox-1) MDS 2.
CATALOGUE = {
    "heart_rate": ("147842", "NM", 72, "72", "264864", "1.2.1.1"),
    "pulse_rate": ("149530", "NM", 71, "71", "264864", "2.1.1.2"),
    "spo2": ("150456", "NM", 88, "88", "262688", "2.1.1.1"),
    "resp_rate": ("151562", "NM", 18, "18", "264928", "1.5.1.1"),
    "temperature": ("150364", "NM", 37.4, "37.4", "268192", "1.4.1.1"),
    "bp_systolic": ("150021", "NM", 128, "128", "266016", "1.3.1.1"),
    "bp_diastolic": ("150022", "NM", 81, "81", "266016", "1.3.1.2"),
    "bp_mean": ("150023", "NM", 97, "97", "266016", "1.3.1.3"),
    "glucose": ("160184", "NM", 104, "104", "264274", "1.6.1.1"),
    "weight": ("188736", "NM", 71.35, "71.35", "263875", "1.7.1.1"),
    "perfusion_index": ("150448", "NM", 2.5, "2.5", "262688", "2.1.1.3"),
    "consciousness": ("67775-7", "ST", "C", "C", "", "1.8.1.1"),
    "on_oxygen": ("on_oxygen", "CWE", True, "Y", "", "1.8.1.2"),
    "battery": ("67996", "NM", 64, "64", "262688", "2.0.0.1"),
}
BLE_METRICS = {"spo2", "pulse_rate", "perfusion_index", "battery"}
TS = "2026-11-22T05:00:00.000Z"
DTM = "20261122050000.000+0000"

CONTEXT = {
    "gateway_id": "ward7-gw1",
    "devices": {
        "ox-1": {"transport": "ble", "ble_address": "C0:FF:EE:00:00:01", "manufacturer": "Acme",
                 "model": "OX 9"},
        "mon-2": {"transport": "serial", "serial_path": "/dev/ttyUSB0"},
    },
    "patients": {"p-001": {"location": "W7^12^3"}},
    "limits": {"p-001": {"spo2": {"low": 90}, "heart_rate": {"low": 50, "high": 120}}},
}


def field(seg, n, comp=1, rep=1):
    """An unescaped component of a field, via python-hl7."""
    return seg.extract_field(1, n, rep, comp, 1)


def raw_field(seg, n):
    return str(seg(n)) if n < len(seg) else ""


def run_driver(options, steps, timeout=60, connect_timeout_ms=5000):
    plan = {"options": options, "context": CONTEXT, "steps": steps,
            "connect_timeout_ms": connect_timeout_ms}
    proc = subprocess.run([DRIVER], input=json.dumps(plan), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return lines


def plain(port, **extra):
    return {"type": "hl7v2", "host": "127.0.0.1", "port": port, "sending_application": "VG",
            "sending_facility": "WARD7", "receiving_application": "EHR",
            "assigning_authority": "HOSP&1.2.3.4&ISO", "timeout_s": 5, **extra}


def reading(seq, metric, value, device=None, ts=TS, **extra):
    device = device or ("ox-1" if metric in BLE_METRICS else "mon-2")
    body = {"id": f"r-{seq}", "device": device, "metric": metric, "value": value, "ts": ts,
            **extra}
    return {"seq": seq, "patient": "p-001", "body": body}


def readings_step(rows, patient="p-001", timeout_ms=10000):
    return {"batch": {"kind": "readings", "patient": patient, "rows": rows},
            "timeout_ms": timeout_ms}


def alert_step(seq, timeout_ms=10000, **event):
    body = {"patient": "p-001", "ts": "2026-11-22T05:03:10.000Z",
            "raised_ts": "2026-11-22T05:02:55.000Z", **event}
    return {"batch": {"kind": "alert", "patient": "p-001",
                      "rows": [{"seq": seq, "patient": "p-001", "body": body}]},
            "timeout_ms": timeout_ms}


@pytest.fixture
def server():
    s = MllpServer()
    s.start()
    yield s
    s.stop()


def all_delivered(line, n):
    assert "rows" in line, line
    assert [r["kind"] for r in line["rows"]] == ["delivered"] * n, line


def test_every_metric_in_one_pcd01_message(server):
    rows = []
    for i, (metric, spec) in enumerate(CATALOGUE.items(), start=1):
        rows.append(reading(i, metric, spec[2]))
    out = run_driver(plain(server.port), [readings_step(rows)])
    all_delivered(out[0], len(rows))
    msgs = server.wait_for(1)
    assert len(msgs) == 1
    m = msgs[0]
    assert m.message is not None, m.error
    msg = m.message
    msh = msg.segment("MSH")
    assert raw_field(msh, 9) == "ORU^R01^ORU_R01"
    assert field(msh, 3) == "VG" and field(msh, 4) == "WARD7" and field(msh, 5) == "EHR"
    assert field(msh, 11) == "P" and field(msh, 12) == "2.6"
    assert field(msh, 15) == "AL" and field(msh, 16) == "NE"
    assert field(msh, 18) == "UNICODE UTF-8"
    assert raw_field(msh, 21) == PCD01
    assert len(m.control_id) <= 20 and m.answer == "AA"
    pid = msg.segment("PID")
    assert field(pid, 3, 1) == "p-001"
    assert raw_field(pid, 3) == "p-001^^^HOSP&1.2.3.4&ISO^MR"
    assert field(pid, 3, 5) == "MR"
    pv1 = msg.segment("PV1")
    assert [field(pv1, 3, c) for c in (1, 2, 3)] == ["W7", "12", "3"]

    # Two observation sets: one per device (same time stamp).
    obrs = msg.segments("OBR")
    assert len(obrs) == 2
    assert all(field(o, 7) == DTM for o in obrs)
    assert all(raw_field(o, 4) == "182777000^monitoring of patient^SCT" for o in obrs)

    obx = {field(s, 3): s for s in msg.segments("OBX")}
    for metric, (code, vtype, _value, sent, unit, sub) in CATALOGUE.items():
        s = obx.get(code)
        assert s is not None, f"{metric}: no OBX with code {code}"
        assert field(s, 2) == vtype, metric
        assert field(s, 4) == sub, metric
        assert field(s, 5) == sent, metric
        assert field(s, 6) == unit, metric
        if unit:
            assert field(s, 6, 3) == "MDC" and field(s, 6, 6) == "UCUM", metric
        assert field(s, 11) == "R", metric
        assert field(s, 14) == DTM, metric
        assert field(s, 17) == "AMEAS", metric
        if metric in BLE_METRICS:
            assert raw_field(s, 18) == f"{BLE_EUI64}^ox-1^{BLE_EUI64}^EUI-64", metric
        else:
            assert raw_field(s, 18) == "mon-2^ward7-gw1", metric
    # MDC codes name the MDC reference id next to the code; LOINC where the metric has one.
    assert raw_field(obx["150456"], 3).startswith("150456^MDC_PULS_OXIM_SAT_O2^MDC^59408-5^")
    assert raw_field(obx["147842"], 3).startswith("147842^MDC_ECG_HEART_RATE^MDC^8867-4^")
    assert raw_field(obx["67996"], 3) == "67996^MDC_ATTR_VAL_BATT_CHARGE^MDC"
    assert field(obx["67775-7"], 3, 3) == "LN" and field(obx["67775-7"], 3, 4) == "1104441000000107"
    assert field(obx["on_oxygen"], 3, 3) == "99VG"
    assert raw_field(obx["on_oxygen"], 5) == "Y^Yes^HL70136"
    # OBX-7 and OBX-8: the limits in force and where the value lies.
    assert field(obx["150456"], 7) == ">90" and field(obx["150456"], 8) == "L"
    assert field(obx["147842"], 7) == "50-120" and field(obx["147842"], 8) == "N"
    assert field(obx["149530"], 7) == "" and field(obx["149530"], 8) == ""
    # Device rows: MDS per device with its identity, VMDs with published codes.
    mds = [s for s in msg.segments("OBX") if field(s, 3) == "69965"]
    assert [field(s, 4) for s in mds] == ["1.0.0.0", "2.0.0.0"]
    assert all(field(s, 11) == "X" for s in mds)
    assert raw_field(mds[0], 18) == "mon-2^ward7-gw1"
    assert field(mds[1], 18) == BLE_EUI64 and field(mds[1], 18, 4) == "EUI-64"
    assert field(obx["531970"], 5) == "Acme" and field(obx["531969"], 5) == "OX 9"
    vmds = {field(s, 3): field(s, 4) for s in msg.segments("OBX") if field(s, 4).endswith(".0.0")
            and field(s, 3) != "69965"}
    assert vmds == {"69642": "2.1.0.0", "69798": "1.2.0.0", "69854": "1.3.0.0",
                    "69902": "1.4.0.0"}


def test_redelivery_carries_the_same_control_id(server):
    rows = [reading(1, "spo2", 97), reading(2, "pulse_rate", 70)]
    other = [reading(3, "spo2", 96)]
    out = run_driver(plain(server.port), [readings_step(rows), readings_step(rows),
                                          readings_step(other)])
    assert len(out) == 3
    msgs = server.wait_for(3)
    assert msgs[0].control_id == msgs[1].control_id
    assert msgs[2].control_id != msgs[0].control_id
    assert msgs[0].message.segment("MSH")(7) is not None


def test_flags_escaping_and_spot_checks(server):
    rows = [reading(1, "temperature", 38.2, device="dev|^~\\&",
                    flags=["spot", "questionable"], device_ts="2019-01-01T00:00:00.000Z")]
    out = run_driver(plain(server.port), [readings_step(rows)])
    all_delivered(out[0], 1)
    msg = server.wait_for(1)[0].message
    obx = [s for s in msg.segments("OBX") if field(s, 3) == "150364"][0]
    assert field(obx, 18) == "dev|^~\\&"
    assert field(obx, 17) == "MMEAS"
    nte = msg.segment("NTE")
    assert field(nte, 3) == "flags: spot, questionable; device time 2019-01-01T00:00:00.000Z"


def test_unassigned_device_and_broken_rows(server):
    rows = [reading(1, "spo2", 95), {"seq": 2, "patient": "p-001", "body": "not json"},
            reading(3, "lactate", 2)]
    out = run_driver(plain(server.port), [readings_step(rows, patient="unassigned/ox-1")])
    kinds = [r["kind"] for r in out[0]["rows"]]
    assert kinds == ["delivered", "rejected", "rejected"]
    assert out[0]["rows"][2]["reason"] == "row 3: metric: unknown"
    msg = server.wait_for(1)[0].message
    assert field(msg.segment("PID"), 3) == ""


ALARMS = [
    # (event, expected OBX-5 code of the alarm type, OBX-8, phase, alarm state, inactivation)
    ({"id": "t-1", "alarm_id": "t-1", "kind": "threshold", "metric": "spo2", "priority": "high",
      "state": "active", "value": 84, "limit": 85, "message": "SpO2 84 % below 85 %"},
     "196672", ["L", "PH", "SP"], "start", "active", "enabled"),
    ({"id": "t-2", "alarm_id": "t-1", "kind": "threshold", "metric": "spo2", "priority": "high",
      "state": "acknowledged", "value": 84, "limit": 85, "acknowledged_by": "nurse-7",
      "message": "acknowledged"},
     "196672", ["L", "PH", "SP"], "update", "active", "alert-acknowledged"),
    ({"id": "t-3", "alarm_id": "t-1", "kind": "threshold", "metric": "spo2", "priority": "high",
      "state": "cleared", "value": 92, "limit": 85, "message": "cleared"},
     "196672", ["L", "PH", "SP"], "end", "inactive", "enabled"),
    ({"id": "h-2", "alarm_id": "h-1", "kind": "threshold", "metric": "heart_rate",
      "priority": "high", "state": "active", "value": 141, "limit": 130, "message": "escalated"},
     "196650", ["H", "PH", "SP"], "escalate", "active", "enabled"),
    ({"id": "r-1", "alarm_id": "r-1", "kind": "trend", "metric": "spo2", "priority": "medium",
      "state": "active", "value": -4, "limit": 3, "message": "SpO2 falling"},
     "196616", ["A", "PM", "SP"], "start", "active", "enabled"),
    ({"id": "r-2", "alarm_id": "r-1", "kind": "trend", "metric": "spo2", "priority": "medium",
      "state": "ended", "value": -4, "limit": 3, "message": "patient discharged"},
     "196616", ["A", "PM", "SP"], "end", "inactive", "enabled"),
    ({"id": "x-1", "alarm_id": "x-1", "kind": "technical", "device": "ox-1",
      "condition": "sensor_off", "priority": "medium", "state": "active", "message": "probe off"},
     "196616", ["A", "PM", "ST"], "start", "active", "enabled"),
    ({"id": "x-2", "alarm_id": "x-2", "kind": "technical", "device": "ox-1",
      "condition": "low_battery", "priority": "low", "state": "cleared", "message": "recharged"},
     "196802", ["A", "PL", "ST"], "end", "inactive", "enabled"),
    ({"id": "n-1", "alarm_id": "n-1", "kind": "news2", "priority": "medium", "state": "active",
      "score": 5, "risk": "medium", "value": 5, "message": "NEWS2 5 (medium risk)",
      "subscores": {"resp_rate": 2, "spo2": 1, "air_or_oxygen": 0, "bp_systolic": 0,
                    "pulse": 1, "consciousness": 0, "temperature": 1}},
     "196616", ["A", "PM", "SP"], "start", "active", "enabled"),
    ({"id": "n-2", "alarm_id": "n-1", "kind": "news2", "priority": "high", "state": "active",
      "score": 7, "risk": "high", "value": 7, "message": "NEWS2 7 (high risk)",
      "subscores": {"resp_rate": 3, "spo2": 1, "air_or_oxygen": 0, "bp_systolic": 0,
                    "pulse": 2, "consciousness": 0, "temperature": 1}},
     "196616", ["A", "PH", "SP"], "update", "active", "enabled"),
    ({"id": "n-3", "alarm_id": "n-1", "kind": "news2", "priority": "high", "state": "cleared",
      "score": 2, "risk": "low", "value": 2, "message": "NEWS2 2 (low risk)",
      "subscores": {"resp_rate": 1, "spo2": 0, "air_or_oxygen": 0, "bp_systolic": 0,
                    "pulse": 1, "consciousness": 0, "temperature": 0}},
     "196616", ["A", "PH", "SP"], "end", "inactive", "enabled"),
]


def test_every_alarm_kind_and_state_as_pcd04(server):
    steps = [alert_step(i, **event) for i, (event, *_rest) in enumerate(ALARMS, start=1)]
    out = run_driver(plain(server.port), steps)
    assert len(out) == len(ALARMS)
    for line in out:
        all_delivered(line, 1)
    news2 = sum(1 for e, *_ in ALARMS if e["kind"] == "news2")
    msgs = server.wait_for(len(ALARMS) + news2)
    alarms = [m for m in msgs if m.type == "ORU^R40"]
    scores = [m for m in msgs if m.type == "ORU^R01"]
    assert len(alarms) == len(ALARMS) and len(scores) == news2
    for m, (event, code, flags, phase, state, inactivation) in zip(alarms, ALARMS):
        what = event["id"]
        assert m.message is not None, m.error
        msg = m.message
        assert raw_field(msg.segment("MSH"), 21) == PCD04, what
        obr = msg.segment("OBR")
        assert raw_field(obr, 4) == "196616^MDC_EVT_ALARM^MDC", what
        assert field(obr, 2) == event["id"] and field(obr, 3) == event["alarm_id"], what
        assert field(obr, 7) == "20261122050255.000+0000", what
        if event["id"] != event["alarm_id"]:
            assert raw_field(obr, 29) == f"^{event['alarm_id']}&VG", what
        obx = msg.segments("OBX")
        assert [field(s, 3) for s in obx] == ["196616", field(obx[1], 3), "68481", "68482",
                                              "68483", "68484", "68485"], what
        subs = [field(s, 4) for s in obx]
        assert all(s.endswith(f".{i}") for i, s in enumerate(subs, start=1)), (what, subs)
        assert field(obx[0], 5) == code, what
        assert field(obx[0], 5, 9) == event["message"], what
        assert [str(r) for r in obx[0](8)] == flags, what
        assert field(obx[2], 5) == phase, what
        assert field(obx[3], 5) == state, what
        assert field(obx[4], 5) == inactivation, what
        assert field(obx[5], 5) == {"high": "PH", "medium": "PM", "low": "PL"}[event["priority"]]
        assert field(obx[6], 5) == ("ST" if event["kind"] == "technical" else "SP"), what
        if event.get("acknowledged_by"):
            assert field(obx[4], 16) == event["acknowledged_by"], what
        kind = event["kind"]
        if kind == "threshold":
            assert field(obx[1], 2) == "NM"
            assert field(obx[1], 5) == str(event["value"]), what
            assert field(obx[1], 3) == {"spo2": "150456", "heart_rate": "147842"}[event["metric"]]
        elif kind == "trend":
            assert raw_field(obx[1], 3) == "68480^MDC_ATTR_ALERT_SOURCE^MDC"
            assert field(obx[1], 5) == "150456"
        elif kind == "technical":
            assert field(obx[0], 5, 4) == event["condition"], what
            assert field(obx[0], 18) == BLE_EUI64, what
        else:
            assert field(obx[1], 3) == "1104051000000101"
            assert field(obx[1], 5) == str(event["score"])
    # Threshold limits: the limit crossed, with the other side in force.
    t1 = alarms[0].message.segments("OBX")[1]
    assert field(t1, 7) == ">85"
    h2 = alarms[3].message.segments("OBX")[1]
    assert field(h2, 7) == "50-130"
    # NEWS2 scores as observations.
    first = scores[0].message
    values = {field(s, 3): field(s, 5) for s in first.segments("OBX")}
    assert values["1104051000000101"] == "5"
    assert values["news2-risk"] == "medium"
    assert values["1104301000000104"] == "2"   # respiration rate score
    assert values["1104371000000107"] == "1"   # temperature score


def test_news2_score_change_without_alarm_is_an_observation_only(server):
    event = {"id": "n-9", "alarm_id": "n-9", "kind": "news2", "priority": "low",
             "state": "cleared", "score": 1, "risk": "low", "message": "NEWS2 1 (low risk)"}
    out = run_driver(plain(server.port), [alert_step(1, **event)])
    all_delivered(out[0], 1)
    msgs = server.wait_for(1)
    assert [m.type for m in msgs] == ["ORU^R01"]


NEWS2_ALARM = next(e for e, *_ in ALARMS if e["id"] == "n-1")


@pytest.mark.parametrize("failure", ["ae", "close"])
def test_news2_alarm_failing_between_its_two_messages_sends_both_again(server, failure):
    # The score's ORU^R01 (N…) is accepted; the alarm's ORU^R40 (A…) after it fails once.
    assert NEWS2_ALARM["kind"] == "news2" and NEWS2_ALARM["state"] == "active"
    server.set_mode(failure, n=1, prefix="A", text="Alarm manager busy")
    out = run_driver(plain(server.port), [alert_step(1, **NEWS2_ALARM)] * 2)
    if failure == "ae":
        assert out[0]["rows"] == [{"kind": "retry", "reason": "HL7 AE: Alarm manager busy"}]
    else:
        assert "connection closed by the receiver before the ACK" in out[0]["failure"]
    all_delivered(out[1], 1)
    msgs = server.wait_for(4)
    assert [m.type for m in msgs] == ["ORU^R01", "ORU^R40"] * 2
    assert [m.answer for m in msgs] == ["AA", "AE" if failure == "ae" else "close", "AA", "AA"]
    # The same content again, with the same control ids.
    assert msgs[2].control_id == msgs[0].control_id and msgs[0].control_id.startswith("N")
    assert msgs[3].control_id == msgs[1].control_id and msgs[1].control_id.startswith("A")


def test_audit_events_are_acknowledged_without_a_message(server):
    step = {"batch": {"kind": "audit", "patient": "",
                      "rows": [{"seq": 1, "body": {"id": "a-1", "kind": "reload"}}]}}
    out = run_driver(plain(server.port), [step])
    all_delivered(out[0], 1)
    assert server.received() == []


def test_ae_is_retried_with_the_same_control_id_then_accepted(server):
    server.set_mode("ae", n=2, text="Patient | not on ward")
    rows = [reading(1, "spo2", 97)]
    out = run_driver(plain(server.port), [readings_step(rows)] * 3)
    assert out[0]["rows"] == [{"kind": "retry", "reason": "HL7 AE: Patient | not on ward"}]
    assert out[1]["rows"][0]["kind"] == "retry"
    all_delivered(out[2], 1)
    msgs = server.wait_for(3)
    assert [m.answer for m in msgs] == ["AE", "AE", "AA"]
    assert len({m.control_id for m in msgs}) == 1


def test_ae_beyond_max_retries_is_refused(server):
    server.set_mode("ce", n=10, text="Database unavailable")
    rows = [reading(1, "spo2", 97)]
    out = run_driver(plain(server.port, max_retries=1), [readings_step(rows)] * 3)
    assert out[0]["rows"][0]["kind"] == "retry"
    assert out[1]["rows"] == [{"kind": "rejected",
                               "reason": "HL7 CE 2 times: Database unavailable"}]
    # After the refusal the count starts again for that message.
    assert out[2]["rows"][0]["kind"] == "retry"


def test_ar_refuses_only_that_message(server):
    first = [reading(1, "spo2", 97)]
    second = [reading(2, "spo2", 96)]
    # Learn the control id of the first batch, then reject exactly that one.
    run_driver(plain(server.port), [readings_step(first)])
    target = server.wait_for(1)[0].control_id
    server.clear()
    server.set_mode("ar", control_id=target, text="Unknown patient")
    out = run_driver(plain(server.port), [readings_step(first), readings_step(second)])
    assert out[0]["rows"] == [{"kind": "rejected", "reason": "HL7 AR: Unknown patient"}]
    all_delivered(out[1], 1)


def test_enhanced_mode_commit_accept(server):
    server.set_mode("ca")
    out = run_driver(plain(server.port), [readings_step([reading(1, "spo2", 97)])])
    all_delivered(out[0], 1)


def test_connection_closed_before_the_ack_then_reconnect(server):
    server.set_mode("close", n=1)
    rows = [reading(1, "spo2", 97)]
    out = run_driver(plain(server.port), [readings_step(rows), readings_step(rows)])
    assert "failure" in out[0]
    assert "connection closed by the receiver before the ACK" in out[0]["failure"]
    all_delivered(out[1], 1)
    assert server.connections == 2


def test_connection_closed_mid_ack(server):
    server.set_mode("close_partial")
    out = run_driver(plain(server.port), [readings_step([reading(1, "spo2", 97)])])
    assert "connection closed by the receiver" in out[0]["failure"]


def test_garbage_answer_is_a_link_failure(server):
    server.set_mode("garbage")
    out = run_driver(plain(server.port), [readings_step([reading(1, "spo2", 97)])])
    assert out[0]["failure"] == "MLLP: byte 0: expected a start block (0x0b), got 0x48"


def test_ack_for_another_message_is_a_link_failure(server):
    server.set_mode("wrong_id")
    out = run_driver(plain(server.port), [readings_step([reading(1, "spo2", 97)])])
    assert out[0]["failure"].startswith("ACK for message NOT-D")


def test_silent_receiver_times_out(server):
    server.set_mode("silent")
    out = run_driver(plain(server.port, timeout_s=1), [readings_step([reading(1, "spo2", 97)])],
                     timeout=30)
    assert out[0]["failure"].startswith("no ACK for D")


def test_nothing_listening():
    from conftest import free_port
    out = run_driver(plain(free_port()), [readings_step([reading(1, "spo2", 97)])])
    assert out[0]["connect_error"].startswith("cannot connect to mllp://127.0.0.1:")


# -- TLS ----------------------------------------------------------------------------------------

def tls_server(certs, require_client_cert):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certs / "server.crt", certs / "server.key")
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs / "ca.crt")
    s = MllpServer(ssl_context=ctx)
    s.start()
    return s


def tls_options(port, certs, host="localhost", client=True, **extra):
    tls = {"ca_file": str(certs / "ca.crt")}
    if client:
        tls.update(cert_file=str(certs / "client.crt"), key_file=str(certs / "client.key"))
    return {"type": "hl7v2", "host": host, "port": port, "tls": tls, "timeout_s": 5, **extra}


def test_tls_with_client_certificate(certs):
    s = tls_server(certs, require_client_cert=True)
    try:
        for host in ("localhost", "127.0.0.1"):
            out = run_driver(tls_options(s.port, certs, host=host),
                             [readings_step([reading(1, "spo2", 97)])])
            all_delivered(out[0], 1)
        assert len(s.wait_for(2)) == 2
    finally:
        s.stop()


def test_tls_rejects_a_certificate_for_another_name(certs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    ext = other / "ext"
    ext.write_text("subjectAltName=DNS:engine.example\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(other / "server.key"), "-out", str(other / "server.csr"), "-subj",
                    "/CN=localhost"], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "x509", "-req", "-in", str(other / "server.csr"), "-CA",
                    str(certs / "ca.crt"), "-CAkey", str(certs / "ca.key"), "-CAcreateserial",
                    "-CAserial", str(other / "ca.srl"), "-days", "2", "-out",
                    str(other / "server.crt"), "-extfile", str(ext)],
                   check=True, capture_output=True, timeout=60)
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(other / "server.crt", other / "server.key")
    s = MllpServer(ssl_context=ctx)
    s.start()
    try:
        # The CN says localhost, but only the subjectAltName counts.
        out = run_driver(tls_options(s.port, certs, host="localhost"),
                         [readings_step([reading(1, "spo2", 97)])])
        assert out[0]["connect_error"].endswith(
            "certificate verification failed: hostname mismatch"), out
        out = run_driver(tls_options(s.port, certs, host="127.0.0.1"),
                         [readings_step([reading(1, "spo2", 97)])])
        assert out[0]["connect_error"].endswith(
            "certificate verification failed: IP address mismatch"), out
        assert s.received() == []
    finally:
        s.stop()


def test_tls_rejects_an_unknown_ca(certs, tmp_path):
    stranger = tmp_path / "stranger"
    subprocess.run([str(SOURCE / "scripts" / "gen-certs.sh"), str(stranger)], check=True,
                   capture_output=True, timeout=60)
    s = tls_server(certs, require_client_cert=False)
    try:
        options = tls_options(s.port, certs, client=False)
        options["tls"]["ca_file"] = str(stranger / "ca.crt")
        out = run_driver(options, [readings_step([reading(1, "spo2", 97)])])
        assert "certificate verification failed: " in out[0]["connect_error"], out
    finally:
        s.stop()


def test_tls_receiver_requiring_a_client_certificate_explains(certs):
    s = tls_server(certs, require_client_cert=True)
    try:
        out = run_driver(tls_options(s.port, certs, client=False),
                         [readings_step([reading(1, "spo2", 97)])])
        text = out[0].get("connect_error") or out[0].get("failure")
        assert text and "the receiver may require a client certificate" in text, out
        assert s.received() == []
    finally:
        s.stop()


def test_plain_tcp_to_a_remote_host_is_refused_by_the_check():
    out = run_driver({"type": "hl7v2", "host": "engine.example"}, [])
    assert out[0]["check_error"] == (
        "destinations[0].tls: required for host engine.example "
        "(plain TCP only to localhost, 127.0.0.1 or ::1)")
