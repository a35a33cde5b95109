"""Serial bedside devices through the real gateway: pseudo-terminals stand in for the devices
(a simulated Nonin oximeter streaming at its real baud rate with noise, a Masimo monitor, a
garbage-flooding port), a TCP server stands in for a serial-over-IP converter."""

import json
import os
import random
import socket
import threading
import time
import urllib.request

from conftest import Subscriber, base_config, free_port, wait_until

QUIET = {"thresholds": {"pulse_rate": None, "spo2": None, "heart_rate": None},
         "news2": {"enabled": False},
         "trends": {"spo2_falling": None, "heart_rate_rising": None},
         "technical": {"no_data_s": 3600, "disconnect_alarm_s": 1}}


def nonin_frame(status, pleth, value):
    return bytes([1, status, pleth, value, (1 + status + pleth + value) & 0xFF])


def nonin_packet(hr, spo2, status=0x80):
    out = b""
    for i in range(1, 26):
        value = hr >> 7 if i == 1 else hr & 0x7F if i == 2 else spo2 if i == 3 else 0
        out += nonin_frame(status | (1 if i == 1 else 0), 0x40, value)
    return out


def masimo_line(spo2, bpm, pi="03.60", exc="000800"):
    return (f"11/22/26 05:00:00 SN=0000056661 SPO2={spo2:03d}% BPM={bpm:03d} PI={pi}% "
            f"SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC={exc}\r\n").encode()


class FakeSerialDevice:
    """A pseudo-terminal whose slave side is reachable through a stable symlink, like a udev
    /dev/serial/by-id/ name; unplug() closes it and removes the link, plug() creates a new one."""

    def __init__(self, link, baud=9600):
        self.link = str(link)
        self.baud = baud
        self.master = None
        self.plug()

    def plug(self):
        master, slave = os.openpty()
        name = os.ttyname(slave)
        os.close(slave)
        tmp = self.link + ".new"
        os.symlink(name, tmp)
        os.replace(tmp, self.link)
        self.master = master

    def unplug(self):
        if self.master is not None:
            os.close(self.master)
            self.master = None
        if os.path.lexists(self.link):
            os.remove(self.link)

    def write_paced(self, data):
        """Writes at the device's baud rate (10 bits per byte on the wire)."""
        chunk = max(1, self.baud // 10 // 50)  # 20 ms worth
        for i in range(0, len(data), chunk):
            if self.master is None:
                return
            try:
                os.write(self.master, data[i:i + chunk])
            except OSError:
                return
            time.sleep(len(data[i:i + chunk]) * 10 / self.baud)


class Streamer:
    def __init__(self, fn):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn):
        i = 0
        while not self.stop.is_set():
            fn(i)
            i += 1

    def close(self):
        self.stop.set()
        self.thread.join(10)


def serial_device(dev_id, path, codec, patient="p-001", **transport):
    t = {"type": "serial", "path": str(path), "baud": 9600, "reconnect_min_ms": 100,
         "reconnect_max_ms": 500}
    t.update(transport)
    return {"id": dev_id, "patient": patient, "transport": t, "codec": codec}


def test_nonin_oximeter_at_its_baud_rate_with_noise_unplug_and_replug(
        broker, certs, gateway_factory, tmp_path):
    rng = random.Random(1)
    ox = FakeSerialDevice(tmp_path / "ttyNONIN")
    listen = f"127.0.0.1:{free_port()}"
    sub = Subscriber(broker.port, certs)

    def stream(i):
        data = nonin_packet(60 + i % 40, 90 + i % 8)
        if i % 5 == 0:  # line noise between frames
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) + data
        ox.write_paced(data)

    streamer = None
    try:
        gw = gateway_factory(base_config(tmp_path, broker.port, certs,
                                         [serial_device("ox-1", ox.link, "nonin")],
                                         rules=QUIET, http={"listen": listen})).start()
        streamer = Streamer(stream)
        wait_until(lambda: len([r for r in sub.readings() if r["metric"] == "spo2"]) >= 10, 20,
                   what="SpO2 readings from the oximeter")
        readings = sub.readings()
        assert {r["metric"] for r in readings} == {"pulse_rate", "spo2"}
        assert all(60 <= r["value"] < 100 for r in readings if r["metric"] == "pulse_rate")
        assert all(90 <= r["value"] < 98 for r in readings if r["metric"] == "spo2")
        metrics = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
        assert 'vitalgate_decode_errors_total{device="ox-1"}' in metrics

        # Unplugged: the link goes down, the technical alarm follows after disconnect_alarm_s.
        ox.unplug()
        wait_until(lambda: any(a.get("condition") == "disconnected" and a["state"] == "active"
                               for a in sub.alerts()), 15, what="the disconnected alarm")
        before = len(sub.readings())
        time.sleep(1.0)
        # Plugged back (a new pty behind the same name): reconnected, alarm cleared, data again.
        ox.plug()
        wait_until(lambda: any(a.get("condition") == "disconnected" and a["state"] == "cleared"
                               for a in sub.alerts()), 15, what="the alarm cleared on reconnect")
        wait_until(lambda: len(sub.readings()) > before + 10, 15, what="readings after replugging")
        assert gw.proc.poll() is None
        assert gw.stop() == 0
    finally:
        if streamer:
            streamer.close()
        ox.unplug()
        sub.close()


def test_a_port_flooding_garbage_does_not_affect_another(broker, certs, gateway_factory, tmp_path):
    good = FakeSerialDevice(tmp_path / "ttyMASIMO")
    noisy = FakeSerialDevice(tmp_path / "ttyNOISE", baud=921600)
    sub = Subscriber(broker.port, certs)
    rules = dict(QUIET, technical={"no_data_s": 3600, "disconnect_alarm_s": 1, "bad_frames_per_min": 5})
    sent = []

    def masimo(i):
        if i >= 30:
            time.sleep(0.05)
            return
        line = masimo_line(90 + i % 9, 70 + i % 20)
        sent.append(time.monotonic())
        good.write_paced(line)
        time.sleep(0.1)

    def flood(_i):
        # Garbage at the port's full 921600 baud (about 92 KB/s), e.g. a wrong baud setting.
        noisy.write_paced(os.urandom(18432))

    streams = []
    try:
        gw = gateway_factory(base_config(
            tmp_path, broker.port, certs,
            [serial_device("ox-good", good.link, "masimo"),
             serial_device("ox-noise", noisy.link, "nonin", patient="p-002", baud=921600)],
            patients=("p-001", "p-002"), rules=rules)).start()
        streams = [Streamer(flood), Streamer(masimo)]
        wait_until(lambda: len([r for r in sub.readings() if r["device"] == "ox-good"]) >= 90, 30,
                   what="every reading of the good device")
        good_readings = [r for r in sub.readings() if r["device"] == "ox-good"]
        assert len(good_readings) == 90  # 30 lines x (spo2, pulse_rate, perfusion_index)
        assert {r["metric"] for r in good_readings} == {"spo2", "pulse_rate", "perfusion_index"}
        assert not [r for r in sub.readings() if r["device"] == "ox-noise"]
        wait_until(lambda: any(a.get("condition") == "bad_frames" and a.get("device") == "ox-noise"
                               for a in sub.alerts()), 15, what="bad frames alarm on the noisy port")
        assert not any(a.get("device") == "ox-good" for a in sub.alerts())
        assert gw.proc.poll() is None
    finally:
        for s in streams:
            s.close()
        good.unplug()
        noisy.unplug()
        sub.close()


class FakeConverter:
    """A serial-over-IP converter in TCP server mode that sends Masimo lines to its client."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", self.port))
        self.srv.listen(1)
        self.srv.settimeout(0.2)
        self.stop = threading.Event()
        self.client = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i = 0
        while not self.stop.is_set():
            if self.client is None:
                try:
                    self.client, _ = self.srv.accept()
                except (socket.timeout, OSError):
                    continue
            try:
                self.client.sendall(masimo_line(95, 60 + i % 30))
            except OSError:
                self.client = None
            i += 1
            time.sleep(0.1)

    def close(self):
        """A reboot: the connection and the listener go away."""
        self.stop.set()
        self.thread.join(5)
        if self.client:
            self.client.close()
        self.srv.close()


def test_tcp_converter_reboot_reconnects(broker, certs, gateway_factory, tmp_path):
    conv = FakeConverter()
    sub = Subscriber(broker.port, certs)
    try:
        dev = {"id": "nport-1", "patient": "p-001", "codec": "masimo",
               "transport": {"type": "tcp", "host": "127.0.0.1", "port": conv.port,
                             "reconnect_min_ms": 100, "reconnect_max_ms": 500}}
        gw = gateway_factory(base_config(tmp_path, broker.port, certs, [dev], rules=QUIET)).start()
        wait_until(lambda: len(sub.readings()) >= 9, 15, what="readings over TCP")
        conv.close()
        wait_until(lambda: any(a.get("condition") == "disconnected" and a["state"] == "active"
                               for a in sub.alerts()), 15, what="the disconnected alarm")
        before = len(sub.readings())
        conv = FakeConverter(conv.port)
        wait_until(lambda: any(a.get("condition") == "disconnected" and a["state"] == "cleared"
                               for a in sub.alerts()), 15, what="reconnected")
        wait_until(lambda: len(sub.readings()) > before + 9, 15, what="readings after the reboot")
        assert gw.stop() == 0
    finally:
        conv.close()
        sub.close()


# A child that waits until the gateway's other devices are open, then writes down which
# descriptors it inherited (number -> what /proc says it is) and stays.
FD_LISTER = """
import json, os, sys, time
time.sleep(float(sys.argv[2]))
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[fd] = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        pass
open(sys.argv[1] + ".tmp", "w").write(json.dumps(fds))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""


def tcp_socket_inode(remote_port):
    """The inode of the established IPv4 connection to 127.0.0.1:remote_port (our side)."""
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == remote_port:
            return inode
    return None


def test_exec_children_inherit_no_descriptor_of_other_devices(broker, certs, gateway_factory,
                                                              tmp_path):
    """A vendor bridge started by the exec transport holds only its stdin (/dev/null), stdout
    (its pipe) and stderr: no serial port, TCP connection, other child's pipe or /dev/null of the
    gateway's. (Transports open them close-on-exec, and the child closes every descriptor above
    stderr before exec, which also covers what a library or a sanitizer runtime opens without
    the flag in another thread at the moment of the fork.)"""
    port = FakeSerialDevice(tmp_path / "ttyOX")
    conv = FakeConverter()
    listing = tmp_path / "fds.json"
    try:
        devices = [
            {"id": "ox-1", "patient": "p-001", "codec": {"type": "nonin", "format": 2},
             "transport": {"type": "serial", "path": port.link}},
            {"id": "nport-1", "patient": "p-001", "codec": "masimo",
             "transport": {"type": "tcp", "host": "127.0.0.1", "port": conv.port}},
            {"id": "quiet-1", "patient": "p-001",
             "transport": {"type": "exec", "command": ["/bin/sleep", "600"]}},
            {"id": "lister-1", "patient": "p-001",
             "transport": {"type": "exec",
                           "command": ["/usr/bin/python3", "-c", FD_LISTER, str(listing), "2"]}},
        ]
        # A pipe the gateway inherits without close-on-exec, as from a careless parent.
        inherited = os.pipe()
        try:
            gw = gateway_factory(base_config(tmp_path, broker.port, certs, devices, rules=QUIET))
            gw.start(pass_fds=inherited)
        finally:
            for fd in inherited:
                os.close(fd)
        wait_until(lambda: conv.client is not None, 15, what="the TCP device connected")
        wait_until(listing.exists, 20, what="the child's descriptor list")
        fds = json.loads(listing.read_text())
        assert fds.get("0") == "/dev/null", fds
        assert fds.get("1", "").startswith("pipe:"), fds
        tcp_device = tcp_socket_inode(remote_port=conv.port)
        assert tcp_device, "the TCP device's connection is not in /proc/net/tcp"
        # What the transports open: other children's pipes, /dev/null, the serial port and
        # the TCP device's socket. (Sockets of the MQTT client are not the transports'.)
        leaked = {fd: target for fd, target in fds.items()
                  if fd not in ("0", "1", "2") and
                  (target.startswith(("pipe:", "/dev/")) or target == f"socket:[{tcp_device}]")}
        assert leaked == {}, f"descriptors leaked into an exec child: {leaked}"
        assert gw.stop() == 0
    finally:
        conv.close()
        port.unplug()
