#!/usr/bin/env python3
"""vitalgate load tool: a real gateway against a real mosquitto with mutual TLS on loopback.

It plays a serial-over-IP converter (a TCP server the gateway's `tcp` device connects to) that
sends N patients x M metrics as jsonl, subscribes to the gateway's output with the gateway's
client certificate, and reports:

  throughput  sustained delivered readings/s (as fast as possible, or at --rate)
  latency     alert latency (reading injected -> alert at the subscriber), p50/p99/max, while
              background readings flow at --background-rate
  drain       backlog drain rate after a link outage, and the latency of an alert raised while
              the backlog drains (alerts go first), at the subscriber that takes everything and
              at an alarm view subscribed to alerts alone
  gateway CPU (user+system seconds per second) and peak RSS (VmHWM) for each phase
  nodered     the same readings through Node-RED 4 (tcp in -> json -> threshold function ->
              mqtt out over mutual TLS), installed from npm into bench/.node-red on first use
  fhir        the throughput run with a FHIR destination added: every reading goes to the broker
              and, as transaction Bundles over HTTPS, to a lean FHIR sink (it answers each
              Bundle with a transaction-response and counts the readings); rows leave the
              outbox when both have acknowledged them

Broker-side drops are checked in mosquitto's log (its queues are sized for the test).

  bench/load.py --binary build/release/src/vitalgate                 # every phase
  bench/load.py --phases throughput --seconds 20 --patients 100 --metrics 10
  bench/load.py --phases nodered,throughput                          # the side by side
  bench/load.py --phases throughput,fhir                             # MQTT alone vs MQTT + FHIR
"""

import argparse
import http.server
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
METRICS = [("heart_rate", 60, 100), ("spo2", 95, 99), ("resp_rate", 12, 20),
           ("temperature", 36.5, 37.5), ("bp_systolic", 112, 135), ("bp_diastolic", 65, 85),
           ("bp_mean", 80, 100), ("perfusion_index", 1, 5), ("pulse_rate", 60, 100),
           ("glucose", 80, 140)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class Proc:
    """CPU seconds and peak RSS of a process from /proc."""

    def __init__(self, pid):
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu(self):
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick

    def rss_kb(self, key="VmRSS"):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0


class Converter:
    """The TCP server the device under test connects to; sends what the load thread makes."""

    def __init__(self):
        self.port = free_port()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", self.port))
        self.srv.listen(4)
        self.conn = None
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conn = c

    def wait_client(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.conn:
                    return
            time.sleep(0.05)
        raise SystemExit("the device under test never connected to the load converter")

    def send(self, data):
        with self.lock:
            conn = self.conn
        conn.sendall(data)


class Workload:
    """Pre-rendered jsonl for `patients` x `metrics`. The lines carry no time stamp, as from a
    converter without a clock: the gateway stamps each reading with its receive time (a
    recording's old time stamps would be implausible device times, and chunks sent again would
    step the device's clock back)."""

    def __init__(self, patients, metrics, prefix="p"):
        self.patients = [f"{prefix}-{i:04d}" for i in range(patients)]
        self.metrics = METRICS[:metrics]
        self.rng = random.Random(1)

    def chunk(self, n):
        rng = self.rng
        lines = []
        per_tick = len(self.patients) * len(self.metrics)
        for i in range(n):
            k = i % per_tick
            p = self.patients[k // len(self.metrics)]
            name, lo, hi = self.metrics[k % len(self.metrics)]
            v = round(rng.uniform(lo, hi), 1 if name in ("temperature", "perfusion_index") else 0)
            lines.append('{"metric":"%s","value":%s,"patient":"%s"}\n' % (name, v, p))
        return "".join(lines).encode()


class Subscriber:
    def __init__(self, port, certs, topics, client_id):
        self.readings = 0
        self.messages = 0
        self.first = None
        self.last = None
        self.alerts = []  # (arrival wall ms, event)
        self.lock = threading.Lock()
        c = mqtt.Client(client_id=client_id, clean_session=True)
        c.tls_set(ca_certs=str(certs / "ca.crt"), certfile=str(certs / "client.crt"),
                  keyfile=str(certs / "client.key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.max_inflight_messages_set(1000)
        c.on_message = self._on_message
        c.on_connect = lambda cl, u, f, rc: [cl.subscribe(t, qos=1) for t in topics]
        c.connect("localhost", port, keepalive=60)
        c.loop_start()
        self.client = c

    def _on_message(self, _c, _u, msg):
        now = time.time() * 1000
        if "/alerts/" in msg.topic:
            with self.lock:
                self.alerts.append((now, json.loads(msg.payload)))
            return
        if "/readings/" not in msg.topic:
            return  # status
        n = msg.payload.count(b'"id":') or 1  # Node-RED messages carry one reading each
        with self.lock:
            self.readings += n
            self.messages += 1
            if self.first is None:
                self.first = now
            self.last = now

    def snapshot(self):
        with self.lock:
            return self.readings, time.time()

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class FhirSink:
    """A FHIR server as lean as one can be: HTTPS, keep-alive, answers every transaction Bundle
    with a transaction-response of one 201 per entry and counts the readings it carries (each
    valueQuantity: a lone Observation's value or a BP panel's component). It does not validate;
    the integration tests do that. What it measures is the gateway's side of the exchange."""

    def __init__(self, certs):
        sink = self
        self.lock = threading.Lock()
        self.readings = 0
        self.requests = 0
        self.first = None
        self.last = None

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *_):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                entries = body.count(b'"request":')
                answer = ('{"resourceType":"Bundle","type":"transaction-response","entry":['
                          + ",".join(['{"response":{"status":"201 Created"}}'] * entries) + "]}").encode()
                # Status line, headers and body in one write.
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
                now = time.time() * 1000
                with sink.lock:
                    sink.readings += body.count(b'"valueQuantity"')
                    sink.requests += 1
                    if sink.first is None:
                        sink.first = now
                    sink.last = now

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(certs / "server.crt"), str(certs / "server.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self):
        with self.lock:
            return self.readings, self.requests

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="vitalgate-load-"))
        self.certs = self.work / "certs"
        subprocess.run([str(ROOT / "scripts" / "gen-certs.sh"), str(self.certs), "ward7-gw1"],
                       check=True, stdout=subprocess.DEVNULL)
        self.broker_port = free_port()
        self.broker = None
        self.results = {}

    # --- processes --------------------------------------------------------------------------

    def start_broker(self):
        conf = self.work / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(f"""per_listener_settings false
allow_anonymous true
{user}persistence false
log_dest file {self.work}/mosquitto.log
log_type error
log_type warning
log_type notice
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
message_size_limit 0
listener {self.broker_port} 127.0.0.1
cafile {self.certs}/ca.crt
certfile {self.certs}/server.crt
keyfile {self.certs}/server.key
require_certificate true
tls_version tlsv1.2
""")
        self.broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.broker_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def stop_broker(self):
        if self.broker:
            self.broker.terminate()
            self.broker.wait(10)
            self.broker = None

    def broker_drops(self):
        log = (self.work / "mosquitto.log").read_text(errors="replace")
        return [l for l in log.splitlines() if "dropp" in l.lower()]

    def start_gateway(self, converter_port, patients, extra_rules=None, port=None, destinations=None):
        db = self.work / "buffer.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        cfg = {
            "gateway": {"id": "ward7-gw1", "log_level": "warn"},
            "storage": {"path": str(db), "max_bytes": 8 << 30},
            "mqtt": {"host": "localhost", "port": port or self.broker_port,
                     "tls": {"ca_file": str(self.certs / "ca.crt"),
                             "cert_file": str(self.certs / "client.crt"),
                             "key_file": str(self.certs / "client.key")},
                     "max_inflight": self.args.max_inflight, "max_readings_per_message": 100,
                     "reconnect_min_ms": 100, "reconnect_max_ms": 500},
            "http": {"listen": ""},
            "patients": [{"id": p} for p in patients],
            "devices": [{"id": "load-1", "patient": patients[0], "codec": {"type": "jsonl"},
                         "allowed_patients": ["*"],
                         "transport": {"type": "tcp", "host": "127.0.0.1", "port": converter_port,
                                       "idle_reconnect_s": 0}}],
            "rules": {"technical": {"no_data_s": 3600}},
        }
        if extra_rules:
            cfg["rules"].update(extra_rules)
        if destinations:
            cfg["destinations"] = destinations
        path = self.work / "vitalgate.json"
        path.write_text(json.dumps(cfg))
        log = open(self.work / "vitalgate.log", "ab")
        proc = subprocess.Popen([self.args.binary, "run", "--config", str(path)],
                                stdout=subprocess.DEVNULL, stderr=log)
        return proc

    # --- phases ------------------------------------------------------------------------------

    def run_throughput(self, rate=None, label="throughput", fhir=False):
        a = self.args
        conv = Converter()
        wl = Workload(a.patients, a.metrics)
        sub = Subscriber(self.broker_port, self.certs, ["vitalgate/v1/ward7-gw1/readings/#"], "load-sub")
        sink = FhirSink(self.certs) if fhir else None
        destinations = None
        if sink:
            destinations = [{"type": "fhir", "name": "ehr", "kinds": ["readings", "alerts"],
                             "url": f"https://localhost:{sink.port}/fhir",
                             "tls": {"ca_file": str(self.certs / "ca.crt")},
                             "reconnect_min_ms": 100, "reconnect_max_ms": 500}]
        gw = self.start_gateway(conv.port, wl.patients, destinations=destinations)
        proc = Proc(gw.pid)
        conv.wait_client()
        time.sleep(1.0)
        per_chunk = 5000
        chunks = [wl.chunk(per_chunk) for _ in range(20)]
        sent = 0
        t0 = time.monotonic()
        t0_wall = time.time() * 1000
        cpu0 = proc.cpu()
        stop_at = t0 + a.seconds
        i = 0
        while time.monotonic() < stop_at:
            conv.send(chunks[i % len(chunks)])
            sent += per_chunk
            i += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        send_s = time.monotonic() - t0
        # Wait for everything to arrive (at the FHIR sink too, which may trail the broker).
        deadline = time.monotonic() + (a.fhir_wait if sink else 120)
        while time.monotonic() < deadline:
            n, _ = sub.snapshot()
            f = sink.snapshot()[0] if sink else sent
            if n >= sent and f >= sent:
                break
            time.sleep(0.2)
        n, _ = sub.snapshot()
        cpu = proc.cpu() - cpu0
        elapsed = time.monotonic() - t0
        # Delivered rate: first to last delivery at the subscriber, not the ramp before it.
        total_s = (sub.last - sub.first) / 1000 if sub.last and sub.first else float("nan")
        peak = proc.rss_kb("VmHWM")
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)
        sub.close()
        result = {"sent": sent, "delivered": n, "send_rate": sent / send_s,
                  "delivered_rate": n / total_s if total_s else 0,
                  "gateway_cpu_cores": cpu / elapsed, "peak_rss_mb": peak / 1024,
                  "lost": sent - n, "messages": sub.messages}
        if sink:
            f, requests = sink.snapshot()
            fhir_s = (sink.last - sink.first) / 1000 if sink.last and sink.first else float("nan")
            last = max(sink.last or 0, sub.last or 0)
            result.update({"fhir_delivered": f, "fhir_requests": requests,
                           "fhir_delivered_rate": f / fhir_s if fhir_s else 0,
                           "fhir_lost": sent - f,
                           # Both destinations done: from the first send to the last delivery.
                           "both_delivered_rate": min(n, f) / ((last - t0_wall) / 1000)})
            sink.close()
        self.results[label] = result
        return result

    def run_latency(self):
        """Alert latency while background readings flow at --background-rate."""
        a = self.args
        conv = Converter()
        wl = Workload(a.patients, a.metrics)
        alarm_patient = "alarm-0"
        rules = {"thresholds": {"spo2": {"low": [{"limit": 90, "priority": "high"}], "delay_s": 0,
                                         "hysteresis": 1}}}
        sub = Subscriber(self.broker_port, self.certs, ["vitalgate/v1/ward7-gw1/#"], "load-lat")
        gw = self.start_gateway(conv.port, wl.patients + [alarm_patient], rules)
        proc = Proc(gw.pid)
        conv.wait_client()
        time.sleep(1.0)
        stop = threading.Event()
        rate = a.background_rate

        def background():
            per = max(1, rate // 100)  # 100 chunks a second
            start = time.monotonic()
            sent = 0
            while not stop.is_set():
                conv.send(wl.chunk(per))
                sent += per
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)

        bg = threading.Thread(target=background, daemon=True)
        bg.start()
        cpu0 = proc.cpu()
        t_start = time.monotonic()
        time.sleep(2.0)
        samples = []
        for i in range(a.alarms):
            low = i % 2 == 0
            now_ms = int(time.time() * 1000)
            line = '{"metric":"spo2","value":%d,"patient":"%s","ts":"%s"}\n' % (
                80 if low else 97, alarm_patient, iso(now_ms))
            conv.send(line.encode())
            time.sleep(1.0 / a.alarm_rate)
        time.sleep(2.0)
        stop.set()
        bg.join(5)
        cpu = (proc.cpu() - cpu0) / (time.monotonic() - t_start)
        peak = proc.rss_kb("VmHWM")
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)
        with sub.lock:
            events = [(t, e) for t, e in sub.alerts if e.get("patient") == alarm_patient
                      and e.get("kind") == "threshold"]
        for arrival, e in events:
            ts = e["ts"]
            ms = int(time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000 \
                + int(ts[20:23])
            samples.append(arrival - ms)
        sub.close()
        samples.sort()
        pct = lambda p: samples[min(len(samples) - 1, int(p * (len(samples) - 1)))]
        result = {"alarms": a.alarms, "events": len(samples), "background_rate": rate,
                  "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": samples[-1],
                  "gateway_cpu": cpu, "peak_rss_mb": peak / 1024}
        self.results["latency"] = result
        return result

    def run_drain(self):
        """Backlog after an outage: drain rate, and an alert raised during the drain."""
        a = self.args
        conv = Converter()
        wl = Workload(a.patients, a.metrics)
        rules = {"thresholds": {"spo2": {"low": [{"limit": 90, "priority": "high"}], "delay_s": 0}}}
        self.stop_broker()
        gw = self.start_gateway(conv.port, wl.patients + ["alarm-0"], rules)
        proc = Proc(gw.pid)
        conv.wait_client()
        backlog = a.backlog
        per_chunk = 5000
        chunk = wl.chunk(per_chunk)
        for _ in range(backlog // per_chunk):
            conv.send(chunk)
        # Wait until all of it is committed (the outbox row count stops growing).
        db = self.work / "buffer.db"
        import sqlite3
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                rows = con.execute("SELECT coalesce(sum(count), 0) FROM batches").fetchone()[0]
                con.close()
            except sqlite3.Error:
                rows = 0
            if rows >= backlog:
                break
            time.sleep(0.5)
        rss_backlog = proc.rss_kb("VmRSS")
        size = sum(Path(str(db) + s).stat().st_size for s in ("", "-wal") if Path(str(db) + s).exists())
        self.start_broker()
        sub = Subscriber(self.broker_port, self.certs, ["vitalgate/v1/ward7-gw1/#"], "load-drain")
        # An alarm view subscribes to alerts alone: its queue at the broker holds no readings, so
        # what it sees is the gateway's (and the broker's) share of the latency; `sub`, which
        # takes everything, sees the alert only after the readings the broker queued for it.
        alarm_view = Subscriber(self.broker_port, self.certs, ["vitalgate/v1/ward7-gw1/alerts/#"],
                                "load-drain-alarms")
        cpu0 = proc.cpu()
        t0 = time.monotonic()
        time.sleep(1.0)
        inject = int(time.time() * 1000)
        conv.send(('{"metric":"spo2","value":80,"patient":"alarm-0","ts":"%s"}\n' % iso(inject)).encode())
        alert_latency = None
        view_latency = None
        readings_before_alert = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n, _ = sub.snapshot()
            with sub.lock:
                hit = [t for t, e in sub.alerts if e.get("patient") == "alarm-0"]
            with alarm_view.lock:
                seen = [t for t, e in alarm_view.alerts if e.get("patient") == "alarm-0"]
            if hit and alert_latency is None:
                alert_latency = hit[0] - inject
                readings_before_alert = n
            if seen and view_latency is None:
                view_latency = seen[0] - inject
            if n >= backlog + 1 and alert_latency is not None and view_latency is not None:
                break
            time.sleep(0.2)
        n, _ = sub.snapshot()
        drain_s = (sub.last - sub.first) / 1000
        cpu = (proc.cpu() - cpu0) / (time.monotonic() - t0)
        peak = proc.rss_kb("VmHWM")
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)
        sub.close()
        alarm_view.close()
        result = {"backlog": backlog, "outbox_mb": size / 1e6, "delivered": n,
                  "drain_rate": n / drain_s if drain_s else 0, "alert_latency_ms": alert_latency,
                  "alert_latency_alarm_view_ms": view_latency,
                  "readings_delivered_before_the_alert": readings_before_alert,
                  "rss_with_backlog_mb": rss_backlog / 1024, "peak_rss_mb": peak / 1024,
                  "gateway_cpu": cpu}
        self.results["drain"] = result
        return result

    # --- Node-RED ---------------------------------------------------------------------------

    def node_red_dir(self):
        d = ROOT / "bench" / ".node-red"
        if not (d / "node_modules" / "node-red").exists():
            d.mkdir(parents=True, exist_ok=True)
            print("== installing node-red@4 from npm into bench/.node-red (once)", flush=True)
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(d),
                            "node-red@4"], check=True, stdout=subprocess.DEVNULL)
        return d

    def run_nodered(self):
        a = self.args
        nr = self.node_red_dir()
        conv = Converter()
        user_dir = self.work / "node-red-user"
        user_dir.mkdir(exist_ok=True)
        port = free_port()
        # tcp in (client, lines) -> json -> threshold function -> mqtt out (QoS 1, mutual TLS).
        flow = [
            {"id": "vg.tab", "type": "tab", "label": "vitals"},
            {"id": "vg.tlscfg", "type": "tls-config", "name": "mtls", "cert": str(self.certs / "client.crt"),
             "key": str(self.certs / "client.key"), "ca": str(self.certs / "ca.crt"),
             "verifyservercert": True, "servername": "localhost"},
            {"id": "vg.mqttcfg", "type": "mqtt-broker", "name": "broker", "broker": "localhost",
             "port": str(self.broker_port), "clientid": "nodered-gw", "usetls": True, "tls": "vg.tlscfg",
             "protocolVersion": "4", "keepalive": "60", "cleansession": True},
            {"id": "vg.in", "type": "tcp in", "z": "vg.tab", "server": "client", "host": "127.0.0.1",
             "port": str(conv.port), "datamode": "stream", "datatype": "utf8", "newline": "\\n",
             "topic": "", "wires": [["vg.parse"]]},
            {"id": "vg.parse", "type": "json", "z": "vg.tab", "property": "payload", "action": "obj",
             "wires": [["vg.rule"]]},
            {"id": "vg.rule", "type": "function", "z": "vg.tab", "outputs": 2,
             "func": ("const r = msg.payload;\n"
                      "msg.topic = 'nodered/readings/' + r.patient;\n"
                      "if (r.metric === 'spo2' && r.value < 90) {\n"
                      "  return [msg, {topic: 'nodered/alerts/' + r.patient, payload: {metric: r.metric, value: r.value}}];\n"
                      "}\nreturn [msg, null];"),
             "wires": [["vg.out"], ["vg.out"]]},
            {"id": "vg.out", "type": "mqtt out", "z": "vg.tab", "broker": "vg.mqttcfg", "qos": "1",
             "retain": "false", "wires": []},
        ]
        (user_dir / "flows.json").write_text(json.dumps(flow))
        (user_dir / "settings.js").write_text(
            "module.exports = {uiPort: %d, uiHost: '127.0.0.1', flowFile: 'flows.json', "
            "logging: {console: {level: 'warn'}}, httpAdminRoot: false};\n" % port)
        log = open(self.work / "node-red.log", "ab")
        node = subprocess.Popen([str(nr / "node_modules" / ".bin" / "node-red"), "--userDir",
                                 str(user_dir), "--settings", str(user_dir / "settings.js")],
                                stdout=log, stderr=log)
        proc = Proc(node.pid)
        wl = Workload(a.patients, a.metrics)
        sub = Subscriber(self.broker_port, self.certs, ["nodered/readings/#"], "load-nr")
        conv.wait_client(timeout=60)
        time.sleep(2.0)
        per_chunk = 5000
        chunks = [wl.chunk(per_chunk) for _ in range(20)]
        sent, i = 0, 0
        t0 = time.monotonic()
        cpu0 = proc.cpu()
        while time.monotonic() < t0 + a.seconds:
            conv.send(chunks[i % len(chunks)])
            sent += per_chunk
            i += 1
        deadline = time.monotonic() + 120
        last_n, still = -1, 0
        while time.monotonic() < deadline:
            n, _ = sub.snapshot()
            if n >= sent:
                break
            still = still + 1 if n == last_n else 0
            if still > 50:  # 10 s without progress: it dropped the rest
                break
            last_n = n
            time.sleep(0.2)
        n, _ = sub.snapshot()
        total_s = (sub.last - sub.first) / 1000 if sub.last and sub.first else float("nan")
        cpu = (proc.cpu() - cpu0) / (time.monotonic() - t0)
        peak = proc.rss_kb("VmHWM")
        node.terminate()
        node.wait(20)
        sub.close()
        result = {"sent": sent, "delivered": n, "delivered_rate": n / total_s if total_s else 0,
                  "cpu": cpu, "peak_rss_mb": peak / 1024, "lost": sent - n}
        self.results["nodered"] = result
        return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(ROOT / "build" / "release" / "src" / "vitalgate"))
    p.add_argument("--phases", default="throughput,latency,drain,nodered")
    p.add_argument("--patients", type=int, default=100)
    p.add_argument("--metrics", type=int, default=10)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--rate", type=int, default=0, help="readings/s; 0 = as fast as possible")
    p.add_argument("--background-rate", type=int, default=10000)
    p.add_argument("--alarms", type=int, default=400)
    p.add_argument("--alarm-rate", type=float, default=20)
    p.add_argument("--backlog", type=int, default=500000)
    p.add_argument("--max-inflight", type=int, default=64,
                   help="the gateway's mqtt.max_inflight (default: the gateway's own, 64)")
    p.add_argument("--fhir-wait", type=float, default=900,
                   help="seconds the fhir phase waits for the sink to receive everything")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    a = p.parse_args()
    b = Bench(a)
    b.start_broker()
    try:
        for phase in a.phases.split(","):
            print(f"== {phase}", flush=True)
            if phase == "throughput":
                r = b.run_throughput(a.rate or None)
            elif phase == "latency":
                r = b.run_latency()
            elif phase == "drain":
                r = b.run_drain()
            elif phase == "nodered":
                r = b.run_nodered()
            elif phase == "fhir":
                r = b.run_throughput(a.rate or None, label="fhir", fhir=True)
            else:
                raise SystemExit(f"unknown phase {phase}")
            print(json.dumps(r, indent=1), flush=True)
        drops = b.broker_drops()
        b.results["broker_drops"] = len(drops)
        if drops:
            print("mosquitto dropped messages:\n" + "\n".join(drops[:5]))
        if "throughput" in b.results and "nodered" in b.results and b.results["nodered"]["delivered_rate"]:
            ratio = b.results["throughput"]["delivered_rate"] / b.results["nodered"]["delivered_rate"]
            b.results["ratio_vs_nodered"] = ratio
            print(f"== vitalgate / Node-RED delivered readings/s: {ratio:.1f}x")
        b.results["machine"] = {"cpus": os.cpu_count(), "kernel": os.uname().release}
        if a.json:
            Path(a.json).write_text(json.dumps(b.results, indent=1))
    finally:
        b.stop_broker()
        if a.keep:
            print(f"work directory kept: {b.work}")
        else:
            shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
