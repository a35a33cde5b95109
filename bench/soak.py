#!/usr/bin/env python3
"""Soak run: the AddressSanitizer build of the gateway for a long time (30 minutes by default)
under hostile conditions, ending with no leak and no sanitizer error.

  * simulated patients on every scenario;
  * an exec bridge that interleaves valid jsonl with random garbage and oversized lines;
  * a pseudo-terminal oximeter (Nonin format 2) with line noise;
  * a TCP "converter" sending Masimo lines with garbage, dropping its connection now and then;
  * the broker restarted every --broker-every seconds (down for 5-20 s);
  * SIGHUP every --hup-every seconds, alternating two rule sets;
  * at the end SIGTERM: the gateway must exit 0 and its log must hold no AddressSanitizer,
    LeakSanitizer or UndefinedBehaviorSanitizer report.

  scripts/test.sh --quick   # or: cmake --preset asan && cmake --build --preset asan
  bench/soak.py --binary build/asan/src/vitalgate --minutes 30
"""

import argparse
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("VITALGATE_SOURCE", str(ROOT))

from conftest import Broker, Subscriber, free_port, wait_until  # noqa: E402
from test_serial import FakeSerialDevice, nonin_packet, masimo_line  # noqa: E402

GARBAGE_BRIDGE = r'''
import os, random, sys, time
rng = random.Random(int(sys.argv[1]))
metrics = ["heart_rate", "spo2", "resp_rate", "temperature", "bp_systolic"]
while True:
    r = rng.random()
    if r < 0.7:
        m = rng.choice(metrics)
        line = '{"metric":"%s","value":%d}\n' % (m, rng.randint(30, 110) if m != "temperature" else 37)
    elif r < 0.85:
        line = os.urandom(rng.randint(1, 200)).decode("latin-1") + "\n"
    elif r < 0.9:
        line = "x" * rng.randint(5000, 20000) + "\n"
    else:
        line = '{"metric":"spo2","value":"bad","unexpected":[1,2]}\n'
    sys.stdout.write(line)
    sys.stdout.flush()
    time.sleep(0.01)
'''


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(ROOT / "build" / "asan" / "src" / "vitalgate"))
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--broker-every", type=float, default=120)
    p.add_argument("--hup-every", type=float, default=45)
    p.add_argument("--workdir", default="/tmp/vitalgate-soak")
    a = p.parse_args()
    os.environ["VITALGATE_BIN"] = a.binary
    rng = random.Random(42)
    work = Path(a.workdir)
    if work.exists():
        import shutil
        shutil.rmtree(work)
    work.mkdir(parents=True)
    certs = work / "certs"
    import subprocess
    subprocess.run([str(ROOT / "scripts" / "gen-certs.sh"), str(certs), "ward7-gw1"], check=True,
                   stdout=subprocess.DEVNULL)
    broker = Broker(work, certs).start()
    bridge = work / "bridge.py"
    bridge.write_text(GARBAGE_BRIDGE)
    ox = FakeSerialDevice(work / "ttyOX")
    conv_port = free_port()
    listen = f"127.0.0.1:{free_port()}"

    def cfg(variant):
        spo2 = 90 if variant == 0 else 88
        return {
            "gateway": {"id": "ward7-gw1", "log_level": "info"},
            "storage": {"path": str(work / "buffer.db"), "max_bytes": 64 << 20},
            "mqtt": {"host": "localhost", "port": broker.port,
                     "tls": {"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / "client.crt"),
                             "key_file": str(certs / "client.key")},
                     "reconnect_min_ms": 200, "reconnect_max_ms": 2000},
            "http": {"listen": listen},
            "patients": [{"id": f"p-{i}"} for i in range(8)],
            "devices": [
                {"id": "sim-det", "patient": "p-0", "transport": {"type": "simulator", "scenario": "deteriorating", "time_scale": 20}},
                {"id": "sim-desat", "patient": "p-1", "transport": {"type": "simulator", "scenario": "desaturation", "time_scale": 3}},
                {"id": "sim-brady", "patient": "p-2", "transport": {"type": "simulator", "scenario": "bradycardia", "time_scale": 3}},
                {"id": "sim-loss", "patient": "p-3", "no_data_s": 20, "transport": {"type": "simulator", "scenario": "signal_loss", "time_scale": 2}},
                {"id": "bridge", "patient": "p-4", "transport": {"type": "exec", "command": [sys.executable, str(bridge), "7"], "restart_min_ms": 200}},
                {"id": "ox", "patient": "p-5", "codec": "nonin", "transport": {"type": "serial", "path": str(ox.link), "reconnect_min_ms": 200}},
                {"id": "nport", "patient": "p-6", "codec": "masimo", "transport": {"type": "tcp", "host": "127.0.0.1", "port": conv_port, "reconnect_min_ms": 200, "idle_reconnect_s": 5}},
            ],
            "rules": {"thresholds": {"spo2": {"low": [{"limit": spo2, "priority": "medium"}, {"limit": 85, "priority": "high"}]}}},
        }

    config = work / "vitalgate.json"
    config.write_text(json.dumps(cfg(0)))
    stop = threading.Event()

    def oximeter():
        i = 0
        while not stop.is_set():
            data = nonin_packet(60 + i % 40, 90 + i % 8)
            if i % 4 == 0:
                data = os.urandom(rng.randint(1, 30)) + data
            ox.write_paced(data)
            i += 1

    def converter():
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", conv_port))
        srv.listen(1)
        srv.settimeout(0.5)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            deadline = time.monotonic() + random.uniform(20, 90)
            try:
                while time.monotonic() < deadline and not stop.is_set():
                    c.sendall(masimo_line(random.randint(85, 99), random.randint(50, 120)))
                    if random.random() < 0.2:
                        c.sendall(os.urandom(random.randint(1, 500)))
                    time.sleep(0.2)
            except OSError:
                pass
            c.close()  # a converter reboot
        srv.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (oximeter, converter)]
    for t in threads:
        t.start()
    log = work / "vitalgate.log"
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    gw = subprocess.Popen([a.binary, "run", "--config", str(config)], env=env,
                          stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
    wait_until(lambda: "running: gateway" in log.read_text(errors="replace"), 60, what="start")
    sub = Subscriber(broker.port, certs)

    def rss_kb():
        for line in Path(f"/proc/{gw.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    start = time.monotonic()
    end = start + a.minutes * 60
    next_broker = start + a.broker_every
    next_hup = start + a.hup_every
    next_sample = start + 60
    restarts = hups = 0
    rss = [(0, rss_kb())]
    variant = 0
    print(f"soak: {a.minutes} min, binary {a.binary}, workdir {work}", flush=True)
    while time.monotonic() < end:
        now = time.monotonic()
        if gw.poll() is not None:
            raise SystemExit(f"the gateway died (status {gw.returncode}); see {log}")
        if now >= next_broker:
            broker.stop()
            time.sleep(random.uniform(5, 20))
            broker.start()
            restarts += 1
            next_broker = time.monotonic() + a.broker_every
        if now >= next_hup:
            variant = 1 - variant
            config.write_text(json.dumps(cfg(variant)))
            gw.send_signal(signal.SIGHUP)
            hups += 1
            next_hup = time.monotonic() + a.hup_every
        if now >= next_sample:
            rss.append((int(now - start), rss_kb()))
            print(f"  t={int(now - start)}s rss={rss[-1][1]} kB messages={len(sub.messages)}", flush=True)
            next_sample = now + 60
        time.sleep(1)
    metrics = urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read().decode()
    gw.send_signal(signal.SIGTERM)
    code = gw.wait(60)
    stop.set()
    text = log.read_text(errors="replace")
    problems = [l for l in text.splitlines() if "AddressSanitizer" in l or "LeakSanitizer" in l
                or "runtime error:" in l]
    figures = {
        "minutes": a.minutes, "exit_code": code, "sanitizer_reports": len(problems),
        "broker_restarts": restarts, "sighups": hups,
        "messages_received": len(sub.messages),
        "rss_kb_first": rss[1][1] if len(rss) > 1 else rss[0][1], "rss_kb_last": rss[-1][1],
        "metrics": {l.split()[0]: l.split()[1] for l in metrics.splitlines()
                    if l.startswith(("vitalgate_readings_delivered_total", "vitalgate_alerts_delivered_total",
                                     "vitalgate_store_errors_total", "vitalgate_broker_connects_total"))
                    or l.startswith("vitalgate_decode_errors_total")},
    }
    sub.close()
    broker.stop()
    ox.unplug()
    print(json.dumps(figures, indent=1))
    if code != 0 or problems:
        print("\n".join(problems[:20]))
        raise SystemExit("soak FAILED")
    print("soak passed: exit 0, no sanitizer report")


if __name__ == "__main__":
    main()
