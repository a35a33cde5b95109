"""Clinical correctness in the field, through the real daemon and a real broker: device clocks
that cannot silence another device's alarm, spot checks that alarm, devices that move between
patients (SIGHUP and cmd/assign), device time zones across a DST change, alarms across
restarts."""

import json
import signal
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from conftest import Feed, Subscriber, base_config, free_port, wait_until

# Short condition delays keep the tests short; the rules are the same with any delay.
SPO2_ONLY = {
    "thresholds": {"spo2": {"low": [{"limit": 90, "priority": "medium"},
                                    {"limit": 85, "priority": "high"}], "delay_s": 3}},
    "news2": {"enabled": False},
    "trends": {"spo2_falling": None, "heart_rate_rising": None, "temperature_rising": None},
    "technical": {"no_data_s": 3600, "disconnect_alarm_s": 3600},
}


def iso(dt):
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_utc():
    return datetime.now(timezone.utc)


def exec_device(dev_id, feed, patient="p-001", **extra):
    # "clock": {} keeps the default window (the tests here use the real clock).
    d = {"id": dev_id, "clock": {}, "transport": {"type": "exec", "command": feed.command()}}
    if patient is not None:
        d["patient"] = patient
    d.update(extra)
    return d


class Stream:
    """Sends a reading every `period` seconds from a thread: value and time stamp from
    functions of the send time, so a test can give a device a wrong clock."""

    def __init__(self, feed, metric, value, period=0.25, clock=lambda t: t, extra=None):
        self.feed, self.metric, self.value, self.period = feed, metric, value, period
        self.clock = clock
        self.extra = extra or {}
        self.sent = []  # (send time, value)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.is_set():
            t = now_utc()
            v = self.value() if callable(self.value) else self.value
            line = {"metric": self.metric, "value": v, "ts": iso(self.clock(t))}
            line.update(self.extra)
            try:
                self.feed.send(line)
                self.sent.append((t, v))
            except (OSError, AssertionError):
                pass
            self.stop_event.wait(self.period)

    def stop(self):
        self.stop_event.set()
        self.thread.join(5)


def alerts_where(sub, **match):
    return [a for a in sub.alerts() if all(a.get(k) == v for k, v in match.items())]


def run_clock_case(tmp_path, broker, certs, gateway_factory, faulty_clock, faulty_value=97):
    """dev-ok (right clock) sees SpO2 80 %; dev-bad feeds the same patient with a wrong clock."""
    ok, bad = Feed(tmp_path / "ok.fifo"), Feed(tmp_path / "bad.fifo")
    sub = Subscriber(broker.port, certs)
    streams = []
    try:
        cfg = base_config(tmp_path, broker.port, certs,
                          [exec_device("dev-ok", ok), exec_device("dev-bad", bad)], rules=SPO2_ONLY)
        gateway_factory(cfg).start()
        streams.append(Stream(bad, "spo2", faulty_value, clock=faulty_clock))
        time.sleep(0.5)  # the faulty device first: its clock may be ahead of everything after
        streams.append(Stream(ok, "spo2", 80))
        wait_until(lambda: alerts_where(sub, kind="threshold", metric="spo2", state="active"), 20,
                   what="the SpO2 80 % alarm from the device with the right clock")
        wait_until(lambda: alerts_where(sub, kind="technical", condition="clock", state="active"), 10,
                   what="the clock alarm for the other device")
        clock = alerts_where(sub, kind="technical", condition="clock", state="active")[0]
        assert clock["device"] == "dev-bad", clock
        raised = alerts_where(sub, kind="threshold", metric="spo2", state="active")[0]
        assert raised["priority"] == "high" and raised["value"] == 80
        return sub, clock
    finally:
        for s in streams:
            s.stop()
        ok.close()
        bad.close()


def test_a_second_device_with_a_clock_two_minutes_fast_cannot_silence_the_alarm(
        tmp_path, broker, certs, gateway_factory):
    sub, clock = run_clock_case(tmp_path, broker, certs, gateway_factory,
                                lambda t: t + timedelta(minutes=2))
    assert "2.0 min ahead" in clock["message"], clock["message"]
    # Its readings were forwarded with both times and the flag, not dropped.
    flagged = [r for r in sub.readings() if r["device"] == "dev-bad"]
    assert flagged and all("clock" in r.get("flags", []) and "device_ts" in r for r in flagged)
    sub.close()


def test_a_single_reading_290_s_ahead_cannot_silence_the_alarm(
        tmp_path, broker, certs, gateway_factory):
    first = []

    def one_jump(t):
        if not first:
            first.append(t)
            return t + timedelta(seconds=290)
        return t

    sub, clock = run_clock_case(tmp_path, broker, certs, gateway_factory, one_jump)
    assert "ahead" in clock["message"]
    sub.close()


def test_a_clock_stepped_back_a_day_cannot_silence_the_alarm(tmp_path, broker, certs, gateway_factory):
    sub, clock = run_clock_case(tmp_path, broker, certs, gateway_factory,
                                lambda t: t - timedelta(days=1))
    assert "behind" in clock["message"], clock["message"]
    sub.close()


def test_one_spot_check_set_from_a_jsonl_device_alarms_within_the_delay(
        tmp_path, broker, certs, gateway_factory, feed):
    """A home patient's one set of observations; nothing follows. Default rules: SpO2 has a
    15 s condition delay, completed on the gateway's time."""
    sub = Subscriber(broker.port, certs)
    try:
        dev = exec_device("home-1", feed, no_data_s=86400)
        gateway_factory(base_config(tmp_path, broker.port, certs, [dev])).start()
        t = now_utc()
        sent_at = time.monotonic()
        feed.send({"metric": "spo2", "value": 89, "ts": iso(t)},
                  {"metric": "resp_rate", "value": 25, "ts": iso(t)},
                  {"metric": "bp_systolic", "value": 120, "ts": iso(t)},
                  {"metric": "heart_rate", "value": 80, "ts": iso(t)},
                  {"metric": "temperature", "value": 37.0, "ts": iso(t)})
        wait_until(lambda: alerts_where(sub, kind="threshold", metric="spo2", state="active"),
                   15 + 5, what="the SpO2 alarm of a spot check without a flag")
        # Not before the delay: a device that does not say it sends spot checks is a stream,
        # and only its silence for delay_s completes the condition.
        assert time.monotonic() - sent_at >= 15 - 1, time.monotonic() - sent_at
        news2 = [a for a in sub.alerts() if a["kind"] == "news2" and "score" in a]
        assert news2 and news2[-1]["score"] == 6
    finally:
        sub.close()


def moved_after(sub, marker_value, old, new):
    """Readings carrying `marker_value` under each patient topic."""
    under_old = [r for m in sub.payloads(f"/readings/{old}") for r in m["readings"]
                 if r["value"] == marker_value]
    under_new = [r for m in sub.payloads(f"/readings/{new}") for r in m["readings"]
                 if r["value"] == marker_value]
    return under_old, under_new


def test_a_device_moved_by_sighup_while_streaming_reports_only_as_its_new_patient(
        tmp_path, broker, certs, gateway_factory, feed):
    sub = Subscriber(broker.port, certs)
    marker = {"value": 96}
    stream = None
    try:
        cfg = base_config(tmp_path, broker.port, certs, [exec_device("ox-1", feed)],
                          patients=("p-001", "p-002"), rules=SPO2_ONLY)
        gw = gateway_factory(cfg).start()
        stream = Stream(feed, "spo2", lambda: marker["value"], period=0.02)
        wait_until(lambda: sub.payloads("/readings/p-001"), 10, what="readings under p-001")
        cfg["devices"][0]["patient"] = "p-002"
        gw.config_path.write_text(json.dumps(cfg))
        gw.signal(signal.SIGHUP)
        wait_until(lambda: "moved ox-1 from p-001 to p-002" in gw.logs(), 10, what="the reload")
        marker["value"] = 95  # every reading sent from now on was received after the log line
        wait_until(lambda: len(moved_after(sub, 95, "p-001", "p-002")[1]) >= 50, 15,
                   what="readings under the new patient")
        stream.stop()
        # A last marker: once it is in, the device's earlier readings have been forwarded too.
        feed.send({"metric": "spo2", "value": 94, "ts": iso(now_utc())})
        wait_until(lambda: moved_after(sub, 94, "p-001", "p-002")[1], 10, what="the last marker")
        under_old, under_new = moved_after(sub, 95, "p-001", "p-002")
        assert under_old == [], "a reading received after the reload went to the old patient"
        assert len(under_new) >= 50
    finally:
        if stream:
            stream.stop()
        sub.close()


def test_cmd_assign_moves_a_device_keeps_it_moved_across_a_restart_and_ends_its_alarms(
        tmp_path, broker, certs, gateway_factory, feed):
    sub = Subscriber(broker.port, certs)
    marker = {"value": 80}
    stream = None
    try:
        cfg = base_config(tmp_path, broker.port, certs, [exec_device("ox-1", feed)],
                          patients=("p-001", "p-002"), rules=SPO2_ONLY)
        gw = gateway_factory(cfg).start()
        stream = Stream(feed, "spo2", lambda: marker["value"], period=0.05)
        wait_until(lambda: alerts_where(sub, patient="p-001", metric="spo2", state="active"), 15,
                   what="p-001's SpO2 alarm")
        alarm = alerts_where(sub, patient="p-001", metric="spo2", state="active")[0]
        sub.publish("vitalgate/v1/ward7-gw1/cmd/assign",
                    json.dumps({"device": "ox-1", "patient": "p-002", "by": "nurse.kim"}))
        wait_until(lambda: "assign: device ox-1 moved from p-001 to p-002" in gw.logs(), 10,
                   what="the assignment")
        marker["value"] = 81
        wait_until(lambda: len(moved_after(sub, 81, "p-001", "p-002")[1]) >= 20, 15,
                   what="readings under p-002")
        assert moved_after(sub, 81, "p-001", "p-002")[0] == []
        # p-001's alarm ended (not cleared): the device left, nothing says SpO2 recovered.
        wait_until(lambda: alerts_where(sub, alarm_id=alarm["alarm_id"], state="ended"), 10,
                   what="the ended event")
        assert not alerts_where(sub, alarm_id=alarm["alarm_id"], state="cleared")
        assert any(a["kind"] == "assign" and a["actor"] == "nurse.kim"
                   for a in sub.payloads("/audit")), "the assignment is audited"
        # Kept in the store: after a restart the device still feeds p-002 although the config
        # file says p-001.
        stream.stop()
        assert gw.stop() == 0
        gw.start()
        marker["value"] = 82
        stream = Stream(feed, "spo2", lambda: marker["value"], period=0.05)
        wait_until(lambda: len(moved_after(sub, 82, "p-001", "p-002")[1]) >= 10, 20,
                   what="readings under p-002 after the restart")
        assert moved_after(sub, 82, "p-001", "p-002")[0] == []
        # Unassigned: readings go to readings/unassigned/ox-1 and a technical alarm says so.
        sub.publish("vitalgate/v1/ward7-gw1/cmd/assign",
                    json.dumps({"device": "ox-1", "patient": None, "by": "nurse.kim"}))
        wait_until(lambda: sub.payloads("/readings/unassigned/ox-1"), 10, what="unassigned readings")
        wait_until(lambda: [a for a in sub.payloads("/alerts/unassigned/ox-1")
                            if a.get("condition") == "unassigned" and a["state"] == "active"], 10,
                   what="the unassigned alarm")
        assert sub.payloads("/readings/unassigned/ox-1")[0]["patient"] is None
    finally:
        if stream:
            stream.stop()
        sub.close()


class MasimoConverter:
    """A serial-over-IP converter sending the Masimo lines a test gives it."""

    def __init__(self):
        self.port = free_port()
        self.srv = socket.create_server(("127.0.0.1", self.port))
        self.client = None
        self.accepted = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.client, _ = self.srv.accept()
        self.accepted.set()

    def send(self, local, spo2, bpm=70):
        line = (f"{local:%m/%d/%y %H:%M:%S} SN=0000056661 SPO2={spo2:03d}% BPM={bpm:03d} PI=03.60% "
                f"SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000000\r\n")
        self.client.sendall(line.encode())

    def close(self):
        if self.client:
            self.client.close()
        self.srv.close()


def test_a_device_clock_in_a_dst_zone_loses_nothing_across_the_change(
        tmp_path, broker, certs, gateway_factory):
    """A monitor whose clock shows Sydney time: summer time (UTC+11) now, standard time (UTC+10)
    before 4 October 2026. With a fixed offset one side of the change would be an hour off; with
    `timezone` every time stamp is right, none is flagged, nothing is rejected."""
    zone = ZoneInfo("Australia/Sydney")
    conv = MasimoConverter()
    sub = Subscriber(broker.port, certs)
    try:
        # Old enough records are implausible; these must stay plausible whatever today is.
        age_s = int((now_utc() - datetime(2026, 10, 1, tzinfo=timezone.utc)).total_seconds())
        dev = {"id": "mon-1", "patient": "p-001", "timezone": "Australia/Sydney", "spot": True,
               "clock": {"max_record_age_s": age_s + 30 * 86400},
               "codec": {"type": "masimo", "timestamps": "device"},
               "transport": {"type": "tcp", "host": "127.0.0.1", "port": conv.port}}
        gateway_factory(base_config(tmp_path, broker.port, certs, [dev], rules=SPO2_ONLY)).start()
        assert conv.accepted.wait(10)
        now = now_utc().replace(microsecond=0)
        samples = [datetime(2026, 10, 3, 12, 0, tzinfo=timezone.utc),   # before the change
                   datetime(2026, 10, 5, 12, 0, tzinfo=timezone.utc),   # after it
                   now]
        for i, t in enumerate(samples):
            conv.send(t.astimezone(zone).replace(tzinfo=None), 95 + i)
        wait_until(lambda: len([r for r in sub.readings() if r["metric"] == "spo2"]) >= 3, 15,
                   what="the three readings")
        got = sorted((r["value"], r["ts"]) for r in sub.readings() if r["metric"] == "spo2")
        assert got == [(95 + i, iso(t)) for i, t in enumerate(samples)]
        assert not any("clock" in r.get("flags", []) for r in sub.readings())
        assert not alerts_where(sub, condition="clock")
    finally:
        conv.close()
        sub.close()


def test_a_restart_with_an_open_alarm_publishes_no_new_active_event_for_it(
        tmp_path, broker, certs, gateway_factory, feed):
    sub = Subscriber(broker.port, certs)
    stream = None
    try:
        cfg = base_config(tmp_path, broker.port, certs, [exec_device("ox-1", feed)], rules=SPO2_ONLY)
        gw = gateway_factory(cfg).start()
        stream = Stream(feed, "spo2", 80, period=0.1)
        wait_until(lambda: alerts_where(sub, metric="spo2", state="active"), 15, what="the alarm")
        alarm = alerts_where(sub, metric="spo2", state="active")[0]
        stream.stop()
        assert gw.stop() == 0
        before = len(sub.alerts())
        gw.start()
        stream = Stream(feed, "spo2", 80, period=0.1)
        wait_until(lambda: "1 open alarms carried over" in gw.logs(), 10, what="the restore")
        n = len(sub.readings())
        wait_until(lambda: len(sub.readings()) > n + 20, 15, what="readings after the restart")
        after = [a for a in sub.alerts()[before:] if a.get("metric") == "spo2"]
        assert after == [], f"the still-open alarm was published again: {after}"
        stream.stop()
        # It clears with one event and its old id once the condition ends.
        stream = Stream(feed, "spo2", 97, period=0.1)
        wait_until(lambda: alerts_where(sub, alarm_id=alarm["alarm_id"], state="cleared"), 15,
                   what="the clear")
    finally:
        if stream:
            stream.stop()
        sub.close()
