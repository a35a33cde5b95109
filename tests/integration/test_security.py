"""Security: TLS done right (name, expiry, mutual TLS, TLS 1.1, rotation on SIGHUP), encrypted
payloads interoperable with an independent AES-GCM implementation, an outbox that reveals no
vital signs, logs without patient values, and a strict downlink."""

import base64
import datetime
import ipaddress
import json
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import BINARY, Broker, Subscriber, base_config, free_port, wait_until


# --- certificates made here, independently of scripts/gen-certs.sh --------------------------

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def write_key(path, key):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)


def issue(ca_key, ca_cert, cn, *, dns=(), ips=(), client=False, days=(-1, 365)):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now + datetime.timedelta(days=days[0]))
         .not_valid_after(now + datetime.timedelta(days=days[1]))
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                               else ExtendedKeyUsageOID.SERVER_AUTH]), False))
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), False)
    return key, b.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    ca = (x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
          .sign(ca_key, hashes.SHA256()))
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def save(name, key, cert):
        write_key(d / f"{name}.key", key)
        (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    save("server", *issue(ca_key, ca, "localhost", dns=["localhost"], ips=["127.0.0.1", "::1"]))
    save("wrongname", *issue(ca_key, ca, "broker.elsewhere", dns=["broker.elsewhere"]))
    save("expired", *issue(ca_key, ca, "localhost", dns=["localhost"], ips=["127.0.0.1"],
                           days=(-30, -1)))
    save("client", *issue(ca_key, ca, "ward7-gw1", client=True))
    save("client2", *issue(ca_key, ca, "ward7-gw1", client=True))
    save("client-expired", *issue(ca_key, ca, "ward7-gw1", client=True, days=(-30, -1)))
    save("client-soon", *issue(ca_key, ca, "ward7-gw1", client=True, days=(-1, 10)))
    save("client-3d", *issue(ca_key, ca, "ward7-gw1", client=True, days=(-1, 3)))
    # A subjectAltName with only another IP, and a CN naming the broker's address: the CN must
    # not be used when a SAN is present (RFC 6125).
    save("sanip", *issue(ca_key, ca, "127.0.0.1", ips=["10.9.9.9"]))
    save("notyet", *issue(ca_key, ca, "localhost", dns=["localhost"], ips=["127.0.0.1"], days=(2, 30)))
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    foreign = (x509.CertificateBuilder().subject_name(_name("foreign CA")).issuer_name(_name("foreign CA"))
               .public_key(foreign_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
               .sign(foreign_key, hashes.SHA256()))
    save("foreign", *issue(foreign_key, foreign, "localhost", dns=["localhost"], ips=["127.0.0.1"]))
    save("client-foreign", *issue(foreign_key, foreign, "ward7-gw1", client=True))
    return d


def gateway_cfg(tmp_path, port, pki, devices=(), **extra):
    cfg = base_config(tmp_path, port, pki, list(devices), **extra)
    return cfg


def exec_device(feed):
    return {"id": "ext-1", "patient": "p-001", "transport": {"type": "exec", "command": feed.command()}}


def stored_alerts(db, metric):
    """Undelivered alert rows about `metric` in the outbox (bodies are plain without at-rest keys)."""
    c = sqlite3.connect(db)
    try:
        return [b for (b,) in c.execute("SELECT body FROM alerts") if json.loads(b).get("metric") == metric]
    finally:
        c.close()


def gateway_certs(tmp_path, pki, client="client"):
    """A directory of the gateway's own: the CA and the client pair `client` (e.g.
    "client-soon"), installed as client.crt/client.key with the key private."""
    certs = tmp_path / "gw-certs"
    certs.mkdir(exist_ok=True)
    (certs / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    install_client(certs, pki, client)
    return certs


def install_client(certs, pki, client):
    for n in ("crt", "key"):
        (certs / f"client.{n}").write_bytes((pki / f"{client}.{n}").read_bytes())
    os.chmod(certs / "client.key", 0o600)


def start_broker(tmp_path, pki, server="server", extra=""):
    """mosquitto with mutual TLS using the given server certificate pair."""
    certs = tmp_path / f"broker-{server}"
    certs.mkdir(exist_ok=True)
    for src, dst in (("ca.crt", "ca.crt"), (f"{server}.crt", "server.crt"), (f"{server}.key", "server.key")):
        (certs / dst).write_bytes((pki / src).read_bytes())
    os.chmod(certs / "server.key", 0o600)
    return Broker(tmp_path, certs, extra=extra).start()


# --- TLS ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("server,reason", [
    ("wrongname", "certificate verify failed"),
    ("expired", "certificate verify failed"),
])
def test_broker_certificate_problems_are_refused(tmp_path, pki, gateway_factory, server, reason):
    broker = start_broker(tmp_path, pki, server)
    try:
        listen = f"127.0.0.1:{free_port()}"
        gw = gateway_factory(gateway_cfg(tmp_path, broker.port, pki, http={"listen": listen})).start()
        wait_until(lambda: "cannot connect" in gw.logs(), 15, what="a refused connection")
        time.sleep(1.0)
        assert "connected to broker" not in gw.logs()
        assert reason in gw.logs(), gw.logs()
        try:
            urllib.request.urlopen(f"http://{listen}/healthz", timeout=5)
            raise AssertionError("healthz must be 503")
        except urllib.error.HTTPError as e:
            health = json.loads(e.read())
        assert health["broker"]["connected"] is False
        assert reason in health["broker"]["error"]
    finally:
        broker.stop()


def test_client_without_certificate_is_refused_and_reported(tmp_path, pki, gateway_factory):
    broker = start_broker(tmp_path, pki)
    try:
        cfg = gateway_cfg(tmp_path, broker.port, pki)
        cfg["mqtt"]["tls"] = {"ca_file": str(pki / "ca.crt")}  # no client certificate
        gw = gateway_factory(cfg).start()
        wait_until(lambda: "cannot connect" in gw.logs(), 15, what="a refused connection")
        time.sleep(1.0)
        assert "connected to broker" not in gw.logs()
        line = [l for l in gw.logs().splitlines() if "cannot connect" in l][0]
        # The reason names the missing client certificate, in the TLS library's words or ours.
        assert "certificate required" in line or "no client certificate" in line, line
        assert "peer did not return a certificate" in broker.log.read_text() or \
            "certificate" in broker.log.read_text()
    finally:
        broker.stop()


class TlsOnlyServer:
    """A bare TLS server limited to chosen protocol versions; records completed handshakes."""

    def __init__(self, pki, max_version):
        self.port = free_port()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
        ctx.load_cert_chain(str(pki / "server.crt"), str(pki / "server.key"))
        self.ctx = ctx
        self.handshakes = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.running = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                tls = self.ctx.wrap_socket(conn, server_side=True)
                self.handshakes += 1
                time.sleep(0.2)
                tls.close()
            except (ssl.SSLError, OSError):
                conn.close()

    def close(self):
        self.running = False
        self.sock.close()


def test_tls_1_1_is_refused_and_1_2_is_accepted(tmp_path, pki, gateway_factory):
    old = TlsOnlyServer(pki, ssl.TLSVersion.TLSv1_1)
    new = TlsOnlyServer(pki, ssl.TLSVersion.TLSv1_2)
    try:
        g1 = gateway_factory(gateway_cfg(tmp_path, old.port, pki)).start()
        wait_until(lambda: "cannot connect" in g1.logs(), 15, what="a refused TLS 1.1 connection")
        time.sleep(1.0)
        assert old.handshakes == 0, "a TLS 1.1 handshake completed"
        assert "protocol" in g1.logs().lower(), g1.logs()
        g1.stop()
        # Control: the same gateway completes a TLS 1.2 handshake (the server is not MQTT, so
        # the connection fails afterwards, but the TLS layer accepted it).
        sub_dir = tmp_path / "b"
        sub_dir.mkdir()
        g2 = gateway_factory(gateway_cfg(sub_dir, new.port, pki)).start()
        wait_until(lambda: new.handshakes > 0, 15, what="a TLS 1.2 handshake")
        g2.stop()
    finally:
        old.close()
        new.close()


def test_certificates_are_reloaded_on_sighup(tmp_path, pki, gateway_factory, feed):
    broker = start_broker(tmp_path, pki)
    certs = gateway_certs(tmp_path, pki)
    sub = Subscriber(broker.port, pki)
    try:
        cfg = gateway_cfg(tmp_path, broker.port, certs, [exec_device(feed)])
        gw = gateway_factory(cfg).start()
        wait_until(lambda: "connected to broker" in gw.logs(), 10, what="connected")
        # A broken rotation (key of another certificate) is refused; the link stays up.
        (certs / "client.key").write_bytes((pki / "client2.key").read_bytes())
        gw.signal(signal.SIGHUP)
        wait_until(lambda: "keeping the running configuration" in gw.logs(), 10, what="refused reload")
        assert "does not belong to" in gw.logs()
        # A proper rotation: new certificate and key; the gateway reconnects with them.
        (certs / "client.crt").write_bytes((pki / "client2.crt").read_bytes())
        gw.signal(signal.SIGHUP)
        wait_until(lambda: gw.logs().count("connected to broker") >= 2, 15, what="reconnection")
        assert "reconnecting to use the reloaded certificates" in gw.logs()
        feed.send(json.dumps({"metric": "heart_rate", "value": 70}))
        wait_until(lambda: sub.readings(), 10, what="a reading over the new certificate")
        assert gw.stop() == 0
    finally:
        sub.close()
        broker.stop()


def test_certificate_expiry_is_a_warning_and_never_stops_monitoring(tmp_path, pki, gateway_factory,
                                                                   feed):
    broker = start_broker(tmp_path, pki)
    certs = gateway_certs(tmp_path, pki, "client-soon")
    sub = Subscriber(broker.port, pki)
    try:
        cfg = gateway_cfg(tmp_path, broker.port, certs, [exec_device(feed)])
        path = tmp_path / "check.json"
        path.write_text(json.dumps(cfg))
        # Expiring within 30 days: check shows the certificates and warns, exit 0.
        r = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        assert "cert:       mqtt.tls.ca_file CN=test CA, notBefore " in r.stdout, r.stdout
        assert "cert:       mqtt.tls.cert_file CN=ward7-gw1, notBefore " in r.stdout
        assert "warning:    mqtt.tls.cert_file: " in r.stdout and "expires in 10 days" in r.stdout
        quiet = subprocess.run([BINARY, "check", "--quiet", "--config", str(path)],
                               capture_output=True, text=True, timeout=30)
        assert quiet.returncode == 0 and len(quiet.stdout.splitlines()) == 1, quiet.stdout
        assert "valid: gateway ward7-gw1" in quiet.stdout and "1 warning(s)" in quiet.stdout
        assert "expires in 10 days" in quiet.stderr

        # Expired: still exit 0 in check, and run keeps monitoring while the broker refuses it.
        install_client(certs, pki, "client-expired")
        r = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and "expired on" in r.stdout, r.stdout + r.stderr
        gw = gateway_factory(cfg).start()
        assert "expired on" in gw.logs()
        wait_until(lambda: "cannot connect" in gw.logs(), 15, what="the broker refusing the certificate")
        # It goes on as in any broker outage: devices are read, readings kept, alarms raised.
        assert gw.proc.poll() is None, gw.logs()
        feed.send(json.dumps({"metric": "heart_rate", "value": 71}))
        feed.send(json.dumps({"metric": "spo2", "value": 80, "spot": True}))
        wait_until(lambda: stored_alerts(tmp_path / "buffer.db", "spo2"), 10,
                   what="the SpO2 alarm raised and stored locally")
        # A renewed certificate and SIGHUP: connected, and the buffered reading is delivered.
        install_client(certs, pki, "client")
        gw.signal(signal.SIGHUP)
        wait_until(lambda: "connected to broker" in gw.logs(), 20, what="connection after renewal")
        wait_until(lambda: sub.readings(), 15, what="the buffered reading")
        wait_until(lambda: [a for a in sub.alerts() if a.get("metric") == "spo2"], 15,
                   what="the alarm raised while the certificate was refused")
        assert gw.stop() == 0
    finally:
        sub.close()
        broker.stop()


def test_a_certificate_three_days_from_expiry_gives_the_metric_the_warning_and_a_medium_alert(
        tmp_path, pki, gateway_factory, feed):
    broker = start_broker(tmp_path, pki)
    certs = gateway_certs(tmp_path, pki, "client-3d")
    sub = Subscriber(broker.port, pki)
    try:
        listen = f"127.0.0.1:{free_port()}"
        cfg = gateway_cfg(tmp_path, broker.port, certs, [exec_device(feed)], http={"listen": listen})
        gw = gateway_factory(cfg).start()
        assert "mqtt.tls.cert_file" in gw.logs() and "expires in 3 days" in gw.logs(), gw.logs()
        wait_until(lambda: [a for a in sub.alerts() if a.get("condition") == "certificate"], 15,
                   what="the certificate alert")
        alert = [a for a in sub.alerts() if a.get("condition") == "certificate"][0]
        assert alert["kind"] == "technical" and alert["state"] == "active", alert
        assert alert["priority"] == "medium", alert  # within 7 days (gateway.certificate_alarm_days)
        assert "mqtt.tls.cert_file" in alert.get("message", "") and "expires" in alert["message"], alert
        text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
        expiry = [float(l.split()[-1]) for l in text.splitlines()
                  if l.startswith('vitalgate_certificate_expiry_seconds{role="mqtt.tls.cert_file"')]
        assert len(expiry) == 1, text
        assert 2.9 * 86400 < expiry[0] - time.time() < 3.01 * 86400, expiry
        assert gw.stop() == 0
    finally:
        sub.close()
        broker.stop()


def test_username_and_password_from_a_private_file(tmp_path, pki, gateway_factory):
    pwfile = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "gw", "s3cret"], check=True)
    if os.geteuid() == 0:
        os.chmod(pwfile, 0o644)
    broker = start_broker(tmp_path, pki, extra=f"password_file {pwfile}\nallow_anonymous false\n")
    try:
        secret = tmp_path / "gw.password"
        secret.write_text("wrong\n")
        os.chmod(secret, 0o644)
        cfg = gateway_cfg(tmp_path, broker.port, pki)
        cfg["mqtt"].update({"username": "gw", "password_file": str(secret)})
        path = tmp_path / "check.json"
        path.write_text(json.dumps(cfg))
        r = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True)
        assert r.returncode == 2 and "mqtt.password_file" in r.stderr and "chmod 600" in r.stderr
        os.chmod(secret, 0o600)
        gw = gateway_factory(cfg).start()
        wait_until(lambda: "cannot connect" in gw.logs(), 15, what="refused with a wrong password")
        assert "not authorised" in gw.logs().lower() or "not authorized" in gw.logs().lower()
        gw.stop()
        secret.write_text("s3cret\n")
        gw2 = gateway_factory(cfg).start()
        wait_until(lambda: "connected to broker" in gw2.logs(), 15, what="connected with the password")
        assert "s3cret" not in gw2.logs()
        gw2.stop()
    finally:
        broker.stop()


# --- payload encryption ------------------------------------------------------------------------

def make_key(path):
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    os.chmod(path, 0o600)
    return base64.b64decode(path.read_text().strip())


def open_envelope(key, topic, payload):
    env = json.loads(payload)
    assert env["v"] == 1 and env["alg"] == "A256GCM"
    iv, ct, tag = (base64.b64decode(env[k]) for k in ("iv", "ct", "tag"))
    assert len(iv) == 12 and len(tag) == 16
    return AESGCM(key).decrypt(iv, ct + tag, topic.encode()), env


def test_encrypted_payloads_open_with_an_independent_aes_gcm(tmp_path, pki, gateway_factory, feed):
    broker = start_broker(tmp_path, pki)
    sub = Subscriber(broker.port, pki)
    try:
        key = make_key(tmp_path / "payload.key")
        cfg = gateway_cfg(tmp_path, broker.port, pki, [exec_device(feed)],
                          rules={"thresholds": {"spo2": {"low": [{"limit": 90, "priority": "high"}],
                                                         "delay_s": 0}}})
        cfg["mqtt"]["payload_encryption"] = {"key_file": str(tmp_path / "payload.key"), "key_id": "k1"}
        gw = gateway_factory(cfg).start()
        feed.send(json.dumps({"metric": "spo2", "value": 83.25, "ts": "2026-11-22T05:00:00.000Z"}))
        wait_until(lambda: any("/readings/" in t for t, _, _ in sub.messages) and
                   any("/alerts/" in t for t, _, _ in sub.messages), 15, what="encrypted messages")
        ivs = set()
        for topic, payload, _ in sub.messages:
            assert b"83.25" not in payload and b"spo2" not in payload
            plain, env = open_envelope(key, topic, payload)
            assert env["kid"] == "k1"
            ivs.add(env["iv"])
            doc = json.loads(plain)
            if "/readings/" in topic:
                assert doc["readings"][0]["value"] == 83.25
            if "/alerts/" in topic and doc.get("kind") == "threshold":
                assert doc["metric"] == "spo2"
            if topic.endswith("/status"):
                assert doc["state"] == "online"
            # vitalgate decrypt gives the same plaintext.
            r = subprocess.run([BINARY, "decrypt", "--key", str(tmp_path / "payload.key"),
                                "--topic", topic], input=payload, capture_output=True)
            assert r.returncode == 0 and json.loads(r.stdout) == doc
        assert len(ivs) == len(sub.messages), "every message needs a fresh IV"

        topic, payload, _ = next(m for m in sub.messages if "/readings/" in m[0])
        env = json.loads(payload)
        keyf = str(tmp_path / "payload.key")
        # Wrong topic: the topic is associated data.
        r = subprocess.run([BINARY, "decrypt", "--key", keyf, "--topic", topic + "x"], input=payload,
                           capture_output=True, text=False)
        assert r.returncode == 2 and b"authentication failed" in r.stderr
        # Tampered ciphertext.
        ct = bytearray(base64.b64decode(env["ct"]))
        ct[0] ^= 1
        bad = dict(env, ct=base64.b64encode(bytes(ct)).decode())
        r = subprocess.run([BINARY, "decrypt", "--key", keyf, "--topic", topic],
                           input=json.dumps(bad).encode(), capture_output=True)
        assert r.returncode == 2 and b"authentication failed" in r.stderr
        # Wrong key id: the key is bound to k2.
        r = subprocess.run([BINARY, "decrypt", "--key", "k2=" + keyf, "--topic", topic], input=payload,
                           capture_output=True)
        assert r.returncode == 2 and b'no key for kid "k1"' in r.stderr
        # Key rotation: several keys, the right one by kid.
        other = tmp_path / "other.key"
        make_key(other)
        r = subprocess.run([BINARY, "decrypt", "--key", f"k0={other}", "--key", f"k1={keyf}",
                            "--topic", topic], input=payload, capture_output=True)
        assert r.returncode == 0
        # The other direction: an envelope sealed by Python opens with vitalgate decrypt.
        iv = os.urandom(12)
        sealed = AESGCM(key).encrypt(iv, b'{"hello":"ward 7"}', b"some/topic")
        env2 = {"v": 1, "alg": "A256GCM", "kid": "k1", "iv": base64.b64encode(iv).decode(),
                "ct": base64.b64encode(sealed[:-16]).decode(), "tag": base64.b64encode(sealed[-16:]).decode()}
        r = subprocess.run([BINARY, "decrypt", "--key", keyf, "--topic", "some/topic"],
                           input=json.dumps(env2).encode(), capture_output=True)
        assert r.returncode == 0 and json.loads(r.stdout) == {"hello": "ward 7"}

        # At rest: the outbox holds no vital signs in clear while encryption is on.
        gw.signal(signal.SIGKILL)
        gw.proc.wait(5)
        broker.stop()
        feed.close()  # its reader died with the gateway
        gw.start()
        feed.send(json.dumps({"metric": "spo2", "value": 71.625, "ts": "2026-11-22T05:00:01.000Z"}))
        time.sleep(1.5)
        gw.signal(signal.SIGKILL)
        gw.proc.wait(5)
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("buffer.db*"))
        assert b"71.625" not in raw and b'"metric"' not in raw
        st = os.stat(tmp_path / "buffer.db")
        assert st.st_mode & 0o077 == 0
    finally:
        sub.close()
        broker.stop()


# --- logs and downlink -------------------------------------------------------------------------

def test_logs_carry_no_vital_values_or_device_text(tmp_path, pki, gateway_factory, feed):
    broker = start_broker(tmp_path, pki)
    sub = Subscriber(broker.port, pki)
    try:
        cfg = gateway_cfg(tmp_path, broker.port, pki, [exec_device(feed)],
                          rules={"thresholds": {"heart_rate": {"high": [{"limit": 100, "priority": "high"}],
                                                               "delay_s": 0}}})
        cfg["gateway"]["log_level"] = "trace"
        gw = gateway_factory(cfg).start()
        feed.send(json.dumps({"metric": "heart_rate", "value": 143.375}),
                  json.dumps({"metric": "spo2", "value": 123.5}),          # implausible
                  json.dumps({"metric": "heart_rate", "value": 61, "SECRET_PHI_NAME": 1}),
                  json.dumps({"metric": "Jane Doe", "value": 1}),
                  "garbage with SSN 078-05-1120")
        wait_until(lambda: sub.alerts(), 10, what="the alarm")
        time.sleep(0.5)
        gw.stop()
        logs = gw.logs()
        # Each line without its time stamp, whose milliseconds may read "143" by chance.
        text = "\n".join(re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} ", "", line)
                          for line in logs.splitlines())
        for secret in ("143.375", "123.5", "SECRET_PHI_NAME", "Jane Doe", "078-05-1120"):
            assert secret not in text, f"{secret!r} leaked into the log"
        # The value rounded, as a number of its own: not the digits inside a pid such as 14306.
        assert not re.search(r"(?<![\d.])143(?!\d)", text), "143 leaked into the log"
        assert "not forwarded" in logs and "unknown key" in logs  # the events are still logged
    finally:
        sub.close()
        broker.stop()


def test_downlink_is_size_limited_schema_checked_and_only_for_known_alerts(
        tmp_path, pki, gateway_factory, feed):
    broker = start_broker(tmp_path, pki)
    sub = Subscriber(broker.port, pki)
    try:
        listen = f"127.0.0.1:{free_port()}"
        cfg = gateway_cfg(tmp_path, broker.port, pki, [exec_device(feed)], http={"listen": listen},
                          rules={"thresholds": {"spo2": {"low": [{"limit": 90, "priority": "high"}],
                                                         "delay_s": 0}}})
        gw = gateway_factory(cfg).start()
        feed.send(json.dumps({"metric": "spo2", "value": 80}))
        wait_until(lambda: sub.alerts(), 10, what="an alert")
        alert = sub.alerts()[0]
        ack = "vitalgate/v1/ward7-gw1/cmd/ack"
        sub.publish(ack, json.dumps({"alert_id": alert["id"], "by": "x" * 2000}))  # > 1024 bytes
        sub.publish(ack, json.dumps({"alert_id": alert["id"], "by": "n", "extra": 1}))
        sub.publish(ack, json.dumps({"alert_id": alert["id"]}))
        sub.publish(ack, json.dumps({"alert_id": "deadbeef-1", "by": "n"}))
        sub.publish(ack, b"\xff\xfe")
        sub.publish(ack, json.dumps({"alert_id": alert["id"].split("-")[0] + "-fffffff", "by": "n"}))

        def counts():
            text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
            rejected = sum(int(l.split()[1]) for l in text.splitlines()
                           if l.startswith("vitalgate_downlink_rejected_total{"))
            unknown = int([l for l in text.splitlines()
                           if l.startswith('vitalgate_acks_total{result="rejected"}')][0].split()[1])
            return rejected, unknown

        # Messages are handled in order: once the last one counts, all have been seen.
        wait_until(lambda: counts()[1] >= 1, 15, what="the unknown id counted")
        assert counts() == (5, 1)
        assert len(sub.alerts()) == 1  # nothing was acknowledged
        assert "x" * 100 not in gw.logs()
        sub.publish(ack, json.dumps({"alert_id": alert["id"], "by": "nurse-3"}))
        wait_until(lambda: len(sub.alerts()) >= 2, 20, what="a valid acknowledgement")
        assert sub.alerts()[1]["state"] == "acknowledged"
    finally:
        sub.close()
        broker.stop()
