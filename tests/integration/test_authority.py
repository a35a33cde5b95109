"""Who may change an alarm's state, and the hostile probes that used to get through: sealed,
fresh, unreplayable downlink commands under payload encryption; a fleet's broker ACL; the TLS
name check by subjectAltName and each verification failure named; config paths that are not
files; restart-only settings on SIGHUP."""

import base64
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest

from conftest import BINARY, Broker, Subscriber, base_config, free_port, wait_until
from test_security import exec_device, gateway_certs, issue, pki, start_broker  # noqa: F401 (fixture)


def metrics(listen):
    return urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()


def metric(text, name_and_labels):
    for line in text.splitlines():
        if line.startswith(name_and_labels + " "):
            return float(line.split()[-1])
    return 0.0


def key_file(path):
    path.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    os.chmod(path, 0o600)
    return path


def seal(key, topic, payload, kid="dl1"):
    r = subprocess.run([BINARY, "seal", "--key", str(key), "--kid", kid, "--topic", topic],
                       input=payload, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def decrypt(key, topic, payload):
    r = subprocess.run([BINARY, "decrypt", "--key", str(key), "--topic", topic], input=payload,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_under_encryption_only_a_sealed_fresh_ack_from_the_downlink_key_counts(
        tmp_path, pki, gateway_factory, feed):
    broker = start_broker(tmp_path, pki)
    payload_key = key_file(tmp_path / "payload.key")
    downlink_key = key_file(tmp_path / "downlink.key")
    sub = Subscriber(broker.port, pki)
    try:
        listen = f"127.0.0.1:{free_port()}"
        cfg = base_config(tmp_path, broker.port, pki, [exec_device(feed)], http={"listen": listen},
                          rules={"thresholds": {"spo2": {"low": [{"limit": 90, "priority": "high"}],
                                                         "delay_s": 0}},
                                 "news2": {"enabled": False}})
        cfg["mqtt"]["payload_encryption"] = {"key_file": str(payload_key), "key_id": "k1",
                                             "downlink_key_file": str(downlink_key),
                                             "downlink_key_id": "dl1"}
        gateway_factory(cfg).start()
        feed.send(json.dumps({"metric": "spo2", "value": 80}))
        opened = {}

        def spo2_events():
            """The SpO2 alarm's events, decrypted (other alarms, e.g. certificates, left out)."""
            out = []
            for t, raw, _ in [m for m in sub.messages if "/alerts/" in m[0]]:
                if raw not in opened:
                    opened[raw] = decrypt(payload_key, t, raw.decode())
                if opened[raw].get("metric") == "spo2":
                    out.append(opened[raw])
            return out

        wait_until(spo2_events, 15, what="an alert")
        alert = spo2_events()[0]
        ack = "vitalgate/v1/ward7-gw1/cmd/ack"

        def refused(reason):
            return metric(metrics(listen), f'vitalgate_downlink_rejected_total{{reason="{reason}"}}')

        # 1. Plaintext, even with the right id: refused.
        sub.publish(ack, json.dumps({"alert_id": alert["alarm_id"], "by": "mallory"}))
        # 2. A guessed id, sealed with the payload key (the one a compromised consumer has).
        wrong = seal(payload_key, ack, json.dumps({"alert_id": alert["alarm_id"], "by": "mallory",
                                                   "ts": now_iso(), "nonce": secrets.token_hex(8)}),
                     kid="dl1")
        sub.publish(ack, wrong)
        # (A retained command is test_a_retained_ack_delivered_on_subscription_has_no_effect:
        # the broker passes a retained publication to present subscribers as a live one.)
        wait_until(lambda: refused("not_sealed") >= 1 and refused("seal") >= 1, 10,
                   what="the refusals counted")
        assert len(spo2_events()) == 1, "nothing was acknowledged"
        # 3. Sealed with the downlink key, fresh: applied.
        good = seal(downlink_key, ack, json.dumps({"alert_id": alert["alarm_id"], "by": "nurse.kim",
                                                   "ts": now_iso(), "nonce": secrets.token_hex(8)}))
        sub.publish(ack, good)
        wait_until(lambda: len(spo2_events()) == 2, 10, what="the acknowledgement")
        acked = spo2_events()[1]
        assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "nurse.kim"
        # 4. The same sealed message again: a replay, refused.
        sub.publish(ack, good)
        wait_until(lambda: refused("replayed") >= 1, 10, what="the replay refused")
        assert len(spo2_events()) == 2
    finally:
        sub.close()
        broker.stop()


def test_a_downlink_key_equal_to_the_payload_key_is_refused_at_start(tmp_path, pki, gateway_factory, feed):
    """Whoever reads the sealed readings must not be able to command: the downlink key is a key
    of its own, even when the same key sits in another file."""
    payload_key = key_file(tmp_path / "payload.key")
    same = tmp_path / "downlink.key"
    same.write_text(payload_key.read_text())
    os.chmod(same, 0o600)
    cfg = base_config(tmp_path, free_port(), pki, [exec_device(feed)])
    cfg["mqtt"]["payload_encryption"] = {"key_file": str(payload_key), "key_id": "k1",
                                         "downlink_key_file": str(same), "downlink_key_id": "dl1"}
    gw = gateway_factory(cfg).start(wait_running=False)
    assert gw.proc.wait(timeout=30) == 2, gw.logs()
    assert "downlink_key_file: holds the payload key" in gw.logs(), gw.logs()


def test_a_retained_ack_delivered_on_subscription_has_no_effect(tmp_path, pki, gateway_factory, feed):
    broker = start_broker(tmp_path, pki)
    sub = Subscriber(broker.port, pki)
    try:
        listen = f"127.0.0.1:{free_port()}"
        cfg = base_config(tmp_path, broker.port, pki, [exec_device(feed)], http={"listen": listen},
                          rules={"thresholds": {"spo2": {"low": [{"limit": 90, "priority": "high"}],
                                                         "delay_s": 0}},
                                 "news2": {"enabled": False}})
        gw = gateway_factory(cfg).start()
        feed.send(json.dumps({"metric": "spo2", "value": 80}))
        wait_until(lambda: sub.alerts(), 15, what="an alert")
        alert = sub.alerts()[0]
        ack = "vitalgate/v1/ward7-gw1/cmd/ack"
        # Left retained on the broker while the gateway is away; it gets it when it subscribes
        # again. (Published while it is subscribed, the broker would pass it on as live.)
        gw.signal(signal.SIGTERM)
        gw.proc.wait(15)
        sub.client.publish(ack, json.dumps({"alert_id": alert["alarm_id"], "by": "stale"}), qos=1,
                           retain=True).wait_for_publish(5)
        gw.start()
        wait_until(lambda: metric(metrics(listen), 'vitalgate_downlink_rejected_total{reason="retained"}') >= 1,
                   15, what="the retained ack refused")
        assert not [a for a in sub.alerts() if a["state"] == "acknowledged"]
        sub.client.publish(ack, b"", qos=1, retain=True).wait_for_publish(5)
    finally:
        sub.close()
        broker.stop()


# --- a fleet's ACL ---------------------------------------------------------------------------

FLEET_ACL = """# vitalgate fleet ACL (docs/security.md): the certificate's CN is the MQTT user name.
# Gateways publish only under their own id and read only their own commands.
pattern write vitalgate/v1/%u/status
pattern write vitalgate/v1/%u/readings/#
pattern write vitalgate/v1/%u/alerts/#
pattern write vitalgate/v1/%u/audit
pattern read vitalgate/v1/%u/cmd/#
# Dashboards read everything and alone may command.
user dashboard
topic read vitalgate/v1/#
topic write vitalgate/v1/+/cmd/#
"""


def fleet_certs(tmp_path, pki):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from test_security import write_key
    import datetime as dt
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    # A CA of our own for the fleet (the pki fixture's CA key is not exported).
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet CA")])
    now = dt.datetime.utcnow()
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), True).sign(ca_key, hashes.SHA256()))
    d = tmp_path / "fleet"
    d.mkdir()
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for cn, client in (("server", False), ("ward7-gw1", True), ("ward7-gw2", True), ("dashboard", True)):
        key, cert = issue(ca_key, ca, "localhost" if cn == "server" else cn,
                          dns=["localhost"] if cn == "server" else (), ips=["127.0.0.1"] if cn == "server" else (),
                          client=client)
        write_key(d / f"{cn}.key", key)
        (d / f"{cn}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return d


def mqtt_client(port, certs, cn):
    import ssl
    c = mqtt.Client(client_id=f"{cn}-{time.monotonic_ns()}", clean_session=True)
    c.tls_set(ca_certs=str(certs / "ca.crt"), certfile=str(certs / f"{cn}.crt"),
              keyfile=str(certs / f"{cn}.key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.connect("localhost", port, keepalive=30)
    c.loop_start()
    return c


def test_fleet_acl_a_gateway_can_neither_publish_as_nor_command_another(tmp_path, pki, gateway_factory, feed):
    certs = fleet_certs(tmp_path, pki)
    (tmp_path / "acl").write_text(FLEET_ACL)
    broker_certs = tmp_path / "fleet-broker"
    broker_certs.mkdir()
    for src, dst in (("ca.crt", "ca.crt"), ("server.crt", "server.crt"), ("server.key", "server.key")):
        (broker_certs / dst).write_bytes((certs / src).read_bytes())
    os.chmod(broker_certs / "server.key", 0o600)
    broker = Broker(tmp_path, broker_certs,
                    extra=f"use_identity_as_username true\nacl_file {tmp_path / 'acl'}\n").start()
    seen = []
    dash = gw2 = None
    try:
        # gw1: the real gateway with its own certificate.
        gw_certs = tmp_path / "gw1"
        gw_certs.mkdir()
        for src, dst in (("ca.crt", "ca.crt"), ("ward7-gw1.crt", "client.crt"), ("ward7-gw1.key", "client.key")):
            (gw_certs / dst).write_bytes((certs / src).read_bytes())
        os.chmod(gw_certs / "client.key", 0o600)
        listen = f"127.0.0.1:{free_port()}"
        cfg = base_config(tmp_path, broker.port, gw_certs, [exec_device(feed)], http={"listen": listen},
                          rules={"thresholds": {"spo2": {"low": [{"limit": 90, "priority": "high"}],
                                                         "delay_s": 0}},
                                 "news2": {"enabled": False}})
        gw = gateway_factory(cfg).start()
        dash = mqtt_client(broker.port, certs, "dashboard")
        dash.on_message = lambda c, u, m: seen.append((m.topic, m.payload))
        dash.subscribe("vitalgate/v1/#", qos=1)
        feed.send(json.dumps({"metric": "spo2", "value": 80}))
        wait_until(lambda: [t for t, _ in seen if "/ward7-gw1/alerts/" in t], 15, what="gw1's alert")
        alert = json.loads([p for t, p in seen if "/ward7-gw1/alerts/" in t][0])
        # gw2 tries to publish as gw1 and to acknowledge gw1's alarm: the broker drops both.
        gw2 = mqtt_client(broker.port, certs, "ward7-gw2")
        gw2.publish("vitalgate/v1/ward7-gw1/readings/p-001",
                    json.dumps({"gateway": "ward7-gw1", "patient": "p-001", "readings": []}), qos=1).wait_for_publish(5)
        gw2.publish("vitalgate/v1/ward7-gw1/cmd/ack",
                    json.dumps({"alert_id": alert["alarm_id"], "by": "gw2"}), qos=1).wait_for_publish(5)
        # gw2 may publish under its own id (the ACL is not simply closed).
        gw2.publish("vitalgate/v1/ward7-gw2/status", json.dumps({"state": "online"}), qos=1).wait_for_publish(5)
        wait_until(lambda: [t for t, _ in seen if t == "vitalgate/v1/ward7-gw2/status"], 10,
                   what="gw2's own status")
        time.sleep(1)
        assert not [t for t, _ in seen if t == "vitalgate/v1/ward7-gw1/readings/p-001" and
                    json.loads(_) == {"gateway": "ward7-gw1", "patient": "p-001", "readings": []}]
        assert "acknowledged" not in [json.loads(p).get("state") for t, p in seen if "/alerts/" in t]
        # The dashboard may command gw1.
        dash.publish("vitalgate/v1/ward7-gw1/cmd/ack",
                     json.dumps({"alert_id": alert["alarm_id"], "by": "nurse.kim"}), qos=1).wait_for_publish(5)
        wait_until(lambda: "acknowledged" in [json.loads(p).get("state") for t, p in seen if "/alerts/" in t],
                   10, what="the dashboard's acknowledgement")
        assert gw.proc.poll() is None
    finally:
        for c in (dash, gw2):
            if c:
                c.loop_stop()
                c.disconnect()
        broker.stop()


# --- TLS: names and reasons --------------------------------------------------------------------

@pytest.mark.parametrize("case,host,reason", [
    ("sanip", "127.0.0.1", "name_mismatch"),
    ("wrongname", "localhost", "name_mismatch"),
    ("expired", "localhost", "expired"),
    ("notyet", "localhost", "not_yet_valid"),
    ("foreign", "localhost", "unknown_ca"),
])
def test_each_broker_certificate_failure_is_refused_with_its_reason(
        tmp_path, pki, gateway_factory, case, host, reason):
    broker = start_broker(tmp_path, pki, case)
    try:
        listen = f"127.0.0.1:{free_port()}"
        cfg = base_config(tmp_path, broker.port, pki, [], http={"listen": listen})
        cfg["mqtt"]["host"] = host
        gw = gateway_factory(cfg).start()
        wait_until(lambda: f"({reason})" in gw.logs(), 15, what=f"the {reason} failure in the log")
        assert "connected to broker" not in gw.logs()
        wait_until(lambda: metric(metrics(listen), f'vitalgate_tls_failures_total{{reason="{reason}"}}') >= 1,
                   10, what="the labelled counter")
    finally:
        broker.stop()


def test_a_client_certificate_the_broker_refuses_is_named_counted_and_alarmed(
        tmp_path, pki, gateway_factory, feed):
    broker = start_broker(tmp_path, pki)
    certs = gateway_certs(tmp_path, pki, "client-foreign")
    try:
        listen = f"127.0.0.1:{free_port()}"
        cfg = base_config(tmp_path, broker.port, certs, [exec_device(feed)], http={"listen": listen})
        gw = gateway_factory(cfg).start()
        wait_until(lambda: "refuses the gateway's certificate" in gw.logs(), 20, what="the reason")
        wait_until(lambda: metric(metrics(listen),
                                  'vitalgate_tls_failures_total{reason="client_certificate_rejected"}') >= 1,
                   10, what="the counter")
        # The certificate alarm is raised, high (kept in the outbox until the broker takes it).
        wait_until(lambda: metric(metrics(listen), 'vitalgate_alarms_open{kind="technical",priority="high"}') >= 1,
                   10, what="the high technical alarm open")
        status = json.loads(urllib.request.urlopen(f"http://{listen}/api/status", timeout=5).read())
        assert any(a.get("what") == "certificate" and a["priority"] == "high" for a in status["alarms"]), \
            status["alarms"]
        assert gw.proc.poll() is None, "monitoring goes on"
    finally:
        broker.stop()


# --- config paths and reloads ------------------------------------------------------------------

def test_config_paths_that_are_not_files_are_refused_at_once(tmp_path):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    for path, words in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file"),
                        (tmp_path, "is a directory")):
        start = time.monotonic()
        r = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True,
                           timeout=20)
        assert r.returncode == 2, r.stderr
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert time.monotonic() - start < 10
    big = tmp_path / "big.json"
    big.write_text(" " * (5 << 20) + "{}")
    r = subprocess.run([BINARY, "check", "--config", str(big)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "at most" in r.stderr, r.stderr


def test_a_sighup_that_changes_restart_only_settings_says_which(tmp_path, pki, gateway_factory, feed):
    broker = start_broker(tmp_path, pki)
    try:
        cfg = base_config(tmp_path, broker.port, pki, [exec_device(feed)])
        gw = gateway_factory(cfg).start()
        cfg["gateway"]["id"] = "ward7-gw9"
        cfg["mqtt"]["keepalive_s"] = 60
        gw.config_path.write_text(json.dumps(cfg))
        gw.signal(signal.SIGHUP)
        wait_until(lambda: "take effect at the next restart" in gw.logs(), 10, what="the warning")
        line = [l for l in gw.logs().splitlines() if "take effect at the next restart" in l][0]
        assert "gateway.id" in line and "mqtt.keepalive_s" in line, line
    finally:
        broker.stop()
