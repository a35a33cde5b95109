"""Fixtures for integration tests: certificates, a real mosquitto broker with mutual TLS on
loopback, the real vitalgate binary, and an MQTT subscriber. Every wait is bounded."""

import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

SOURCE = Path(os.environ.get("VITALGATE_SOURCE", Path(__file__).resolve().parents[2]))
BINARY = os.environ.get("VITALGATE_BIN", str(SOURCE / "build" / "debug" / "src" / "vitalgate"))
FEEDER = Path(__file__).with_name("feeder.py")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([str(SOURCE / "scripts" / "gen-certs.sh"), str(d), "ward7-gw1"], check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    return d


class Broker:
    """mosquitto with a mutual-TLS listener on 127.0.0.1 and a plain loopback listener."""

    def __init__(self, workdir, certs, port=None, extra=""):
        self.workdir = Path(workdir)
        self.certs = Path(certs)
        self.port = port or free_port()
        self.extra = extra
        self.proc = None
        self.log = self.workdir / f"mosquitto-{self.port}.log"

    def start(self):
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"""per_listener_settings false
allow_anonymous true
{user}persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
max_queued_messages 100000
max_inflight_messages 1000
listener {self.port} 127.0.0.1
cafile {self.certs}/ca.crt
certfile {self.certs}/server.crt
keyfile {self.certs}/server.key
require_certificate true
tls_version tlsv1.2
{self.extra}
""")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        wait_until(self._accepting, 10, what=f"mosquitto on port {self.port}")
        return self

    def _accepting(self):
        if self.proc.poll() is not None:
            raise AssertionError("mosquitto exited: " + self.log.read_text())
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def broker(tmp_path, certs):
    b = Broker(tmp_path, certs).start()
    yield b
    b.stop()


class Subscriber:
    """A paho client with the gateway's client certificate that records every message."""

    def __init__(self, port, certs, topics=("vitalgate/#",), client_id=None):
        self.messages = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id=client_id or f"test-sub-{time.monotonic_ns()}",
                                  clean_session=True)
        self.client.tls_set(ca_certs=str(certs / "ca.crt"), certfile=str(certs / "client.crt"),
                            keyfile=str(certs / "client.key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.topics = list(topics)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        # Subscribe on every (re)connection: a clean session forgets subscriptions.
        self.client.on_connect = lambda c, u, f, rc: [c.subscribe(t, qos=1) for t in self.topics]
        self.client.connect("localhost", port, keepalive=30)
        self._stop = threading.Event()
        self._outgoing = queue.Queue()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        if not self.subscribed.wait(10):
            raise AssertionError("subscriber: no SUBACK")

    def _loop(self):
        # Own network loop instead of loop_start(): paho 1.6 lets an SSL EOF raised while
        # writing escape from loop_forever(), which silently ends its thread when the broker
        # restarts. Here every failure leads to a reconnect attempt.
        while not self._stop.is_set():
            try:
                self._publish_queued()
                rc = self.client.loop(timeout=0.1)
                if rc == mqtt.MQTT_ERR_SUCCESS:
                    continue
            except (OSError, ValueError):
                pass
            if self._stop.wait(0.2):
                return
            try:
                self.client.reconnect()
            except (OSError, ValueError):
                pass

    def _on_message(self, _client, _userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def payloads(self, topic_part):
        with self.lock:
            out = []
            for topic, payload, _retain in self.messages:
                if topic_part in topic:
                    out.append(json.loads(payload))
            return out

    def readings(self):
        return [r for m in self.payloads("/readings/") for r in m["readings"]]

    def alerts(self):
        return self.payloads("/alerts/")

    def _publish_queued(self):
        while True:
            try:
                topic, payload, done = self._outgoing.get_nowait()
            except queue.Empty:
                return
            done.append(self.client.publish(topic, payload, qos=1))

    def publish(self, topic, payload):
        # The network loop's thread writes to the TLS socket; a second writer would corrupt
        # the TLS stream (OpenSSL "bad length"), so the loop publishes on the caller's behalf.
        done = []
        self._outgoing.put((topic, payload, done))
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
        if not done:
            raise AssertionError(f"subscriber: could not publish to {topic}")
        done[0].wait_for_publish(max(0.1, deadline - time.monotonic()))

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.client.disconnect()


@pytest.fixture
def subscribe(broker, certs):
    subs = []

    def make(topics=("vitalgate/#",)):
        s = Subscriber(broker.port, certs, topics)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


class Feed:
    """A named pipe read by tests/integration/feeder.py, the child of an exec device."""

    def __init__(self, path):
        self.path = Path(path)
        os.mkfifo(self.path)
        self.fd = None

    def command(self):
        return [sys.executable if os.path.exists(sys.executable) else "/usr/bin/python3",
                str(FEEDER), str(self.path)]

    def send(self, *objs):
        if self.fd is None:
            # Opening blocks until the feeder opened its end; bounded by a non-blocking retry.
            deadline = time.monotonic() + 15
            while True:
                try:
                    self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                    os.set_blocking(self.fd, True)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError("feeder never opened the pipe")
                    time.sleep(0.05)
        data = "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)
        os.write(self.fd, data.encode())

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Gateway:
    def __init__(self, workdir, config):
        self.workdir = Path(workdir)
        self.config_path = self.workdir / "vitalgate.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.log = self.workdir / "vitalgate.log"
        self.proc = None

    def start(self, wait_running=True, pass_fds=()):
        # The log accumulates over restarts: wait for this start's own "running" line.
        before = self.logs().count("running: gateway")
        self.proc = subprocess.Popen([BINARY, "run", "--config", str(self.config_path)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"),
                                     pass_fds=pass_fds)
        if wait_running:
            wait_until(lambda: self.logs().count("running: gateway") > before or self._died(), 20,
                       what="vitalgate to start")
            assert self.proc.poll() is None, self.logs()
        return self

    def _died(self):
        return self.proc.poll() is not None

    def logs(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout)
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# Most recordings in these tests are stamped 2026-11-22 and played as live streams: devices that
# do not say otherwise accept time stamps that far behind the gateway's clock. max_behind_s
# allows at most a year, so these recordings play as live streams until 2027-11-22; after that
# they need stamping again.
RECORDED_AT = 1795323600  # 2026-11-22T05:00:00Z
RECORDED_CLOCK = {"max_behind_s": 365 * 86400, "max_record_age_s": 365 * 86400}


def base_config(workdir, broker_port, certs, devices, patients=("p-001",), rules=None, **extra):
    for d in devices:
        d.setdefault("clock", dict(RECORDED_CLOCK))
    cfg = {
        "gateway": {"id": "ward7-gw1", "site": "test"},
        "storage": {"path": str(Path(workdir) / "buffer.db")},
        "mqtt": {
            "host": "localhost", "port": broker_port,
            "tls": {"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / "client.crt"),
                    "key_file": str(certs / "client.key")},
            "reconnect_min_ms": 100, "reconnect_max_ms": 1000,
        },
        "http": {"listen": ""},
        "patients": [p if isinstance(p, dict) else {"id": p} for p in patients],
        "devices": devices,
    }
    if rules is not None:
        cfg["rules"] = rules
    for k, v in extra.items():
        cfg[k] = v
    return cfg


@pytest.fixture
def feed(tmp_path):
    """A FIFO-backed feed for an exec device (see Feed)."""
    f = Feed(tmp_path / "feed.fifo")
    yield f
    f.close()


@pytest.fixture
def gateway_factory(tmp_path):
    gateways = []

    def make(config):
        g = Gateway(tmp_path, config)
        gateways.append(g)
        return g

    yield make
    for g in gateways:
        if g.proc and g.proc.poll() is None:
            g.kill()


class Relay:
    """A TCP relay between the gateway and the broker that a test can cut and mend, standing in
    for a network outage (the TLS session passes through untouched)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.up = threading.Event()
        self.up.set()
        self.conns = []
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while self.running:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            # Blocking from now on: an idle MQTT link is not a dead one.
            upstream.settimeout(None)
            client.settimeout(None)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """Drops every connection and refuses new ones."""
        self.up.clear()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns = []

    def mend(self):
        self.up.set()

    def close(self):
        self.running = False
        self.cut()
        self.listener.close()


class Pacer:
    """Writes numbered readings into a Feed at a steady rate from a thread, surviving the
    feeder's restarts (a write that fails is retried, so 'sent' means 'written to the pipe')."""

    def __init__(self, feed, rate_hz, patients=("p-001",), metric="heart_rate", start_seq=0):
        self.feed = feed
        self.rate = rate_hz
        self.patients = patients
        self.metric = metric
        self.seq = start_seq
        self.sent = []  # (seq, patient)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def line(self, seq, patient):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(RECORDED_AT + seq // 1000))
        return json.dumps({"metric": self.metric, "value": 40 + seq % 100, "patient": patient,
                           "ts": f"{ts}.{seq % 1000:03d}Z"})

    def _run(self):
        interval = 1.0 / self.rate
        next_t = time.monotonic()
        while not self.stop_event.is_set():
            patient = self.patients[self.seq % len(self.patients)]
            try:
                self.feed.send(self.line(self.seq, patient))
            except (OSError, AssertionError):
                self.feed.close()
                time.sleep(0.05)
                continue
            self.sent.append((self.seq, patient))
            self.seq += 1
            next_t += interval
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)


def seq_of(reading):
    """The sequence number a Pacer encoded in a reading's time stamp (ms since its epoch)."""
    from datetime import datetime, timezone
    t = datetime.strptime(reading["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    delta = t - datetime.fromtimestamp(RECORDED_AT, timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def compact_row_ids(body):
    """Reading ids of a compact outbox row (format 2, laid out as
    include/vitalgate/core/compact_row.h says)."""
    pos = 1
    strings = []

    def varint():
        nonlocal pos
        value, shift = 0, 0
        while True:
            b = body[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value

    def unzigzag(v):
        return (v >> 1) ^ -(v & 1)

    def string():
        nonlocal pos
        n = varint()
        if n < len(strings):
            return strings[n]
        size = varint()
        strings.append(body[pos:pos + size].decode())
        pos += size
        return strings[-1]

    assert body[:1] == b"\x01", "not a compact row"
    ids, last = [], 0
    while pos < len(body):
        last = (last + unzigzag(varint())) & (2**64 - 1)
        instance = string()
        for _ in range(3):  # device, metric, unit
            string()
        head = body[pos]
        pos += 2  # head and flags
        if head & 0x08:
            pos += 8
        else:
            varint()
        varint()  # ts
        if head & 0x04:
            varint()  # device_ts
        ids.append(f"{instance}-{last:x}")
    return ids


def outbox_ids(db_path):
    """Ids of the readings in an outbox file (read-only, after the gateway died)."""
    import sqlite3
    if not os.path.exists(db_path):
        return set()
    con = sqlite3.connect(db_path, timeout=10)
    try:
        ids = set()
        for fmt, body in con.execute("SELECT format, body FROM batches"):
            body = body.encode() if isinstance(body, str) else body
            if fmt == 2:  # schema 4: compact binary records
                ids.update(compact_row_ids(body))
            else:  # schema 2: the readings of one patient and commit joined by newlines
                ids.update(json.loads(line)["id"] for line in body.decode().split("\n") if line)
        return ids
    finally:
        con.close()
