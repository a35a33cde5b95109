"""Several destinations from one outbox, through the real daemon: a FHIR server over HTTPS and an
HL7 v2 interface engine over MLLP beside the MQTT broker. Each has its own cursor: a dead one
holds nobody back and loses nothing; faults (a cut link, SIGKILL, a 503 storm, AE/AR answers, a
listener that closes mid-message) cost no reading; per-patient order and at-least-once hold."""

import json
import signal
import sqlite3
import time

from conftest import Feed, Pacer, Subscriber, base_config, free_port, seq_of, wait_until
from fhir_server import FhirServer
from mllp_server import MllpServer

QUIET = {"thresholds": {"spo2": {"low": [{"limit": 85, "priority": "high"}], "delay_s": 0}},
         "news2": {"enabled": False},
         "trends": {"spo2_falling": None, "heart_rate_rising": None, "temperature_rising": None},
         "technical": {"no_data_s": 3600, "disconnect_alarm_s": 3600}}
PATIENTS = ("p-001", "p-002")


def device(feed):
    return {"id": "ext-1", "patient": "p-001", "allowed_patients": ["*"],
            "transport": {"type": "exec", "command": feed.command(), "restart_min_ms": 50}}


def fhir_destination(certs, port, name="ehr", **extra):
    d = {"type": "fhir", "name": name, "url": f"https://127.0.0.1:{port}/fhir",
         "tls": {"ca_file": str(certs / "ca.crt")}, "reconnect_min_ms": 100, "reconnect_max_ms": 1000,
         "timeout_s": 5}
    d.update(extra)
    return d


def hl7_destination(port, name="engine", **extra):
    d = {"type": "hl7v2", "name": name, "host": "127.0.0.1", "port": port,
         "reconnect_min_ms": 100, "reconnect_max_ms": 1000, "timeout_s": 5,
         "kinds": ["readings", "alerts"]}
    d.update(extra)
    return d


def stored_observation_ids(server):
    """PHD identifiers of the Observations the FHIR server holds (one per conditional create)."""
    ids = []
    for obs in server.store().get("Observation", {}).values():
        for ident in obs.get("identifier", []):
            if "system" not in ident:
                ids.append(ident["value"])
    return ids


def unacked(db, name):
    """Readings the destination `name` has not acknowledged (from the outbox file)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        bit = con.execute("SELECT bit FROM destinations WHERE name = ?", (name,)).fetchone()[0]
        return con.execute("SELECT coalesce(sum(count), 0) FROM batches WHERE acked & ? = 0",
                           (1 << bit,)).fetchone()[0]
    finally:
        con.close()


def test_fhir_gets_every_reading_once_through_a_cut_link_sigkill_and_503s_while_mqtt_flows(
        tmp_path, broker, certs, gateway_factory):
    fhir = FhirServer(str(certs / "server.crt"), str(certs / "server.key"))
    fhir_port = fhir.start()
    dead_port = free_port()  # a destination that never answers, the whole test
    feed = Feed(tmp_path / "feed.fifo")
    sub = Subscriber(broker.port, certs)
    pacer = None
    try:
        cfg = base_config(tmp_path, broker.port, certs, [device(feed)], patients=PATIENTS, rules=QUIET,
                          destinations=[fhir_destination(certs, fhir_port),
                                        fhir_destination(certs, dead_port, name="down")])
        gw = gateway_factory(cfg).start()
        pacer = Pacer(feed, 100, PATIENTS).start()
        wait_until(lambda: len(stored_observation_ids(fhir)) >= 100, 30, what="FHIR deliveries")
        # 1. A cut link: the server goes away and comes back on the same port.
        fhir.stop()
        time.sleep(2)
        fhir.start(fhir_port)
        # 2. A 503 storm with Retry-After: at least two requests answered 503.
        asked = len(fhir.received())
        fhir.set_mode("unavailable", retry_after=1)
        wait_until(lambda: len(fhir.received()) >= asked + 2, 15, what="requests answered 503")
        fhir.set_mode("ok")
        # 3. SIGKILL while delivering, then a restart.
        time.sleep(1)
        before_kill = pacer.seq
        gw.kill()
        gw.start()
        after_restart = pacer.seq
        time.sleep(2)
        pacer.stop()
        sent = {seq for seq, _ in pacer.sent}
        # MQTT kept delivering all along and has everything but what the killed gateway held:
        # lines in its stdin pipe and readings not yet committed, all from just before the kill
        # (lines written while it was down wait in the FIFO and arrive after the restart).
        def lost_outside_the_kill():
            return {q for q in sent - {seq_of(r) for r in sub.readings()}
                    if not before_kill - 50 <= q <= after_restart}

        try:
            wait_until(lambda: not lost_outside_the_kill(), 60, what="MQTT has every reading")
        except AssertionError:
            outside = sorted(lost_outside_the_kill())
            raise AssertionError(f"{len(outside)} readings missing at MQTT outside the kill "
                                 f"({before_kill - 50}..{after_restart}): {outside[:20]} ... {outside[-5:]}")
        time.sleep(1)
        delivered = {seq_of(r) for r in sub.readings()}
        lost = sent - delivered
        # What was lost is one run of consecutive lines: nothing else went missing.
        assert not lost or lost == {q for q in sent if min(lost) <= q <= max(lost)}, sorted(lost)
        # FHIR: every reading MQTT got, exactly once per conditional identifier.
        wait_until(lambda: len(set(stored_observation_ids(fhir))) >= len(delivered), 90,
                   what="the FHIR server has every reading")
        ids = stored_observation_ids(fhir)
        assert len(ids) == len(set(ids)), "a reading was stored twice under one identifier"
        assert len(set(ids)) == len(delivered)
        # The dead destination lost nothing: everything still waits for it in the outbox, and
        # it held nobody back.
        assert unacked(tmp_path / "buffer.db", "down") >= len(delivered)
        wait_until(lambda: unacked(tmp_path / "buffer.db", "ehr") == 0 and
                   unacked(tmp_path / "buffer.db", "mqtt") == 0, 10, what="every acknowledgement recorded")
        # Its backlog raised the destination alarm? Not within the default 15 min: nothing yet.
        assert gw.proc.poll() is None
    finally:
        if pacer:
            pacer.stop()
        feed.close()
        sub.close()
        fhir.stop()


def test_an_entry_the_fhir_server_rejects_is_dead_lettered_and_alarmed_without_blocking(
        tmp_path, broker, certs, gateway_factory, feed):
    fhir = FhirServer(str(certs / "server.crt"), str(certs / "server.key"))
    port = fhir.start()
    sub = Subscriber(broker.port, certs)
    try:
        # Temperature Observations are refused for good; everything else is taken.
        fhir.set_mode("reject_entry", match={"code": "8310-5"}, status=422,
                      text="temperature not accepted here")
        cfg = base_config(tmp_path, broker.port, certs, [device(feed)], rules=QUIET,
                          destinations=[fhir_destination(certs, port)])
        gateway_factory(cfg).start()
        t = "2026-11-22T05:00:%02d.000Z"
        feed.send(*[{"metric": "heart_rate", "value": 70 + i, "ts": t % i} for i in range(5)])
        feed.send({"metric": "temperature", "value": 37.2, "ts": t % 5})
        feed.send(*[{"metric": "heart_rate", "value": 80 + i, "ts": t % (6 + i)} for i in range(5)])
        wait_until(lambda: len(stored_observation_ids(fhir)) >= 10, 30, what="the other readings")
        wait_until(lambda: [a for a in sub.alerts() if a.get("condition") == "destination"
                            and a["state"] == "active"], 15, what="the destination alarm")
        con = sqlite3.connect(f"file:{tmp_path / 'buffer.db'}?mode=ro", uri=True, timeout=10)
        dead = con.execute("SELECT destination, kind, reason FROM dead_letters").fetchall()
        con.close()
        assert len(dead) == 1 and dead[0][0] == "ehr" and dead[0][1] == "reading"
        assert "temperature not accepted" in dead[0][2]
        wait_until(lambda: unacked(tmp_path / "buffer.db", "ehr") == 0, 10,
                   what="the refused one blocking nothing")
    finally:
        sub.close()
        fhir.stop()


def hl7_readings(server):
    """(control id, [(patient, OBX-3 code, OBX-5 value, OBX-14 time)]) of each ORU^R01."""
    out = []
    for r in server.received():
        if r.message is None or "R01" not in str(r.message.segment("MSH")[9]):
            continue
        patient = str(r.message.segment("PID")[3][0][0]) if r.message.segments("PID") else ""
        obs = []
        for obx in r.message.segments("OBX"):
            if str(obx[2]) in ("NM", "ST", "CWE") and str(obx[14]):
                obs.append((patient, str(obx[3][0][0]), str(obx[5]), str(obx[14])))
        out.append((r.control_id, obs))
    return out


def test_hl7_gets_everything_through_ae_a_listener_closing_mid_message_and_sigkill(
        tmp_path, broker, certs, gateway_factory, feed):
    engine = MllpServer()
    port = engine.start()
    sub = Subscriber(broker.port, certs)
    pacer = None
    try:
        cfg = base_config(tmp_path, broker.port, certs, [device(feed)], patients=PATIENTS, rules=QUIET,
                          destinations=[hl7_destination(port)])
        gw = gateway_factory(cfg).start()
        pacer = Pacer(feed, 50, PATIENTS).start()
        engine.wait_for(5, timeout=30)
        engine.set_mode("ae", n=2, text="busy, try again")
        wait_until(lambda: any(r.answer == "AE" for r in engine.received()), 15, what="an AE answer")
        engine.set_mode("close", n=3)
        wait_until(lambda: sum(r.answer == "close" for r in engine.received()) >= 3, 15,
                   what="three connections closed mid-exchange")
        engine.set_mode("aa")
        before_kill = pacer.seq
        gw.kill()
        gw.start()
        after_restart = pacer.seq
        time.sleep(2)
        pacer.stop()
        sent = {seq for seq, _ in pacer.sent}
        wait_until(lambda: unacked(tmp_path / "buffer.db", "engine") == 0, 90,
                   what="the interface engine acknowledged everything")
        messages = hl7_readings(engine)
        # Every reading arrived (OBX-14 carries its time: the Pacer's sequence number).
        from datetime import datetime
        epoch = datetime(2026, 11, 22, 5, 0, 0)
        got = {}
        for control_id, obs in messages:
            for patient, _code, _value, when in obs:
                t = datetime.strptime(when[:14] + "." + when[15:18], "%Y%m%d%H%M%S.%f") if "." in when \
                    else datetime.strptime(when[:14], "%Y%m%d%H%M%S")
                seq = int((t - epoch).total_seconds() * 1000)
                got.setdefault(seq, set()).add((control_id, patient))
        # Only lines in flight in the device's pipe at the SIGKILL may be missing (never
        # accepted, so never stored); MQTT and the engine have the same set.
        lost = sent - set(got)
        assert all(before_kill - 25 <= q <= after_restart for q in lost), sorted(lost)
        wait_until(lambda: set(got) <= {seq_of(r) for r in sub.readings()}, 30, what="the same readings on MQTT")
        assert not (sent - lost) - {seq_of(r) for r in sub.readings()}
        # A reading that came twice came in the same message (same MSH-10).
        for seq, copies in got.items():
            assert len({c for c, _ in copies}) == 1, f"reading {seq} in two different messages"
        # Per patient, first deliveries are in order.
        for patient in PATIENTS:
            firsts, seen = [], set()
            for control_id, obs in messages:
                for p, _c, _v, when in obs:
                    if p == patient and when not in seen:
                        seen.add(when)
                        firsts.append(when)
            assert firsts == sorted(firsts), patient
    finally:
        if pacer:
            pacer.stop()
        sub.close()
        engine.stop()


def test_a_message_the_engine_refuses_for_good_is_parked_and_alarmed_and_the_rest_flows(
        tmp_path, broker, certs, gateway_factory, feed):
    engine = MllpServer()
    port = engine.start()
    sub = Subscriber(broker.port, certs)
    try:
        cfg = base_config(tmp_path, broker.port, certs, [device(feed)], rules=QUIET,
                          destinations=[hl7_destination(port)])
        gateway_factory(cfg).start()
        engine.set_mode("ar", text="unknown patient")  # every message, for now
        t = "2026-11-22T05:00:%02d.000Z"
        feed.send({"metric": "heart_rate", "value": 70, "ts": t % 1})
        wait_until(lambda: [a for a in sub.alerts() if a.get("condition") == "destination"
                            and a["state"] == "active"], 20, what="the destination alarm")
        engine.set_mode("aa")
        feed.send(*[{"metric": "heart_rate", "value": 80 + i, "ts": t % (2 + i)} for i in range(5)])
        wait_until(lambda: sum(len(obs) for _, obs in hl7_readings(engine)) >= 6, 20,
                   what="the readings after the refused one")
        con = sqlite3.connect(f"file:{tmp_path / 'buffer.db'}?mode=ro", uri=True, timeout=10)
        dead = con.execute("SELECT destination, reason FROM dead_letters").fetchall()
        con.close()
        assert dead and dead[0][0] == "engine" and "unknown patient" in dead[0][1]
        # Acknowledgements are recorded a moment after the engine's answers.
        wait_until(lambda: unacked(tmp_path / "buffer.db", "engine") == 0, 10,
                   what="nothing left waiting for the engine")
    finally:
        sub.close()
        engine.stop()
