"""Plugin transports end to end: the example plugin (plugins/example) loaded through a config
feeds readings from its own thread through the real gateway to the real TLS broker; its link
goes down and up on command; libraries that are not usable plugins are refused with clear
errors at `vitalgate check` and `vitalgate run`. Every wait is bounded."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import BINARY, base_config, wait_until

# The test modules are built into <build>/plugins (tests/CMakeLists.txt).
PLUGIN_DIR = Path(os.environ.get("VITALGATE_PLUGIN_DIR",
                                 Path(BINARY).resolve().parents[1] / "plugins"))
EXAMPLE = PLUGIN_DIR / "vitalgate-example-plugin.so"

RULES = {
    "thresholds": {m: None for m in ["heart_rate", "pulse_rate", "resp_rate", "bp_systolic",
                                      "bp_diastolic", "bp_mean", "temperature", "glucose", "spo2"]},
    "trends": {"spo2_falling": None, "heart_rate_rising": None, "temperature_rising": None},
    "news2": {"enabled": False},
    "technical": {"no_data_s": 3600},
}


def plugin_device(path, config=None):
    return {"id": "ext-1", "patient": "p-001", "disconnect_alarm_s": 1, "codec": "jsonl",
            "transport": {"type": "plugin", "path": str(path), "config": config or {}}}


def check(tmp_path, device):
    cfg = base_config(tmp_path, 1883, Path("/nonexistent"), [device])
    cfg["mqtt"] = {"host": "127.0.0.1"}
    path = tmp_path / "check.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(autouse=True)
def modules_built():
    if not EXAMPLE.exists():
        pytest.fail(f"{EXAMPLE} is missing: build the tests (cmake --build <build>)")


def test_example_plugin_readings_and_link_reach_the_broker(broker, subscribe, gateway_factory,
                                                           certs, tmp_path):
    control = tmp_path / "control.fifo"
    sub = subscribe()
    gw = gateway_factory(base_config(
        tmp_path, broker.port, certs,
        [plugin_device(EXAMPLE, {"rate_hz": 20, "metric": "heart_rate", "value": 72,
                                 "control": str(control)})],
        rules=RULES)).start()
    wait_until(lambda: len(sub.readings()) >= 10, 20, what="readings from the plugin")
    first = sub.readings()[0]
    assert first["metric"] == "heart_rate" and first["value"] == 72 and first["device"] == "ext-1"
    assert "plugin example started" in gw.logs()

    def command(text):
        fd = os.open(control, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)

    def disconnected():
        return [a["state"] for a in sub.alerts() if a.get("condition") == "disconnected"]

    command("down cable pulled")
    wait_until(lambda: disconnected() == ["active"], 20, what="disconnected alert")
    assert "link down: cable pulled" in gw.logs()
    command("value 80")
    command("up")
    wait_until(lambda: disconnected() == ["active", "cleared"], 20, what="alert cleared")
    wait_until(lambda: 80 in [r["value"] for r in sub.readings()], 20, what="readings after up")
    assert gw.stop() == 0
    # The gateway stopped the plugin (which joined its thread) before exiting cleanly.
    assert "plugin example: stopped, worker thread joined" in gw.logs()


def test_missing_file_is_refused_naming_the_key(tmp_path):
    rc, out, err = check(tmp_path, plugin_device(tmp_path / "nope.so"))
    assert rc == 2 and out == ""
    assert "devices[0].transport.path" in err and "nope.so" in err and "No such file" in err


def test_library_without_entry_point_is_refused_with_dlerror(tmp_path):
    lib = PLUGIN_DIR / "vg-test-plugin-no-entry.so"
    rc, _, err = check(tmp_path, plugin_device(lib))
    assert rc == 2
    assert "devices[0].transport.path" in err
    assert "no entry point vitalgate_plugin_v1" in err and "undefined symbol" in err


def test_wrong_abi_version_is_refused_naming_both(tmp_path):
    rc, _, err = check(tmp_path, plugin_device(PLUGIN_DIR / "vg-test-plugin-bad-abi.so"))
    assert rc == 2
    assert "plugin ABI version 99, but this gateway supports version 1" in err


def test_file_that_is_no_library_is_refused_with_the_loader_message(tmp_path):
    fake = tmp_path / "text.so"
    fake.write_text("not a shared object\n")
    rc, _, err = check(tmp_path, plugin_device(fake))
    assert rc == 2 and "cannot load plugin" in err
    assert "invalid ELF header" in err or "file too short" in err


def test_run_refuses_a_bad_plugin_before_starting(broker, certs, gateway_factory, tmp_path):
    gw = gateway_factory(base_config(tmp_path, broker.port, certs,
                                     [plugin_device(PLUGIN_DIR / "vg-test-plugin-bad-abi.so")]))
    gw.start(wait_running=False)
    assert gw.proc.wait(20) == 2
    assert "plugin ABI version 99" in gw.logs()
    assert "running: gateway" not in gw.logs()


def test_plugin_that_refuses_its_config_stops_the_start(broker, certs, gateway_factory, tmp_path):
    gw = gateway_factory(base_config(tmp_path, broker.port, certs,
                                     [plugin_device(EXAMPLE, {"rate_hz": "fast"})]))
    gw.start(wait_running=False)
    assert gw.proc.wait(20) == 1
    logs = gw.logs()
    assert "plugin example: config.rate_hz" in logs and "refused its configuration" in logs
