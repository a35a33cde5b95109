"""The command line: exit codes 0/1/2, one-line errors that name the key, file or offset."""

import json
import os
import subprocess

from conftest import BINARY


def run(*args, stdin=None):
    p = subprocess.run([BINARY, *args], input=stdin, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def write_config(tmp_path, cfg):
    path = tmp_path / "vitalgate.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def minimal(tmp_path, **over):
    cfg = {"gateway": {"id": "gw-1"}, "storage": {"path": str(tmp_path / "b.db")},
           "mqtt": {"host": "127.0.0.1"}, "patients": [{"id": "p-1"}],
           "devices": [{"id": "sim", "patient": "p-1", "transport": {"type": "simulator"}}]}
    cfg.update(over)
    return cfg


def test_version_and_help():
    rc, out, _ = run("--version")
    assert rc == 0 and out.startswith("vitalgate ")
    rc, out, _ = run("--help")
    assert rc == 0 and "vitalgate run --config FILE" in out and "decode" in out


def test_unknown_command_and_missing_arguments_exit_2():
    rc, _, err = run("frobnicate")
    assert rc == 2 and 'unknown command "frobnicate"' in err
    rc, _, err = run("check")
    assert rc == 2 and "--config FILE is required" in err


def test_check_prints_summary_and_effective_config(tmp_path):
    rc, out, err = run("check", "--config", write_config(tmp_path, minimal(tmp_path)))
    assert rc == 0, err
    assert "gateway:    gw-1" in out
    assert "plain TCP (loopback only)" in out
    effective = json.loads(out[out.index("effective config"):].split("\n", 1)[1])
    assert effective["mqtt"]["port"] == 1883
    assert effective["mqtt"]["topic_prefix"] == "vitalgate/v1"
    assert effective["devices"][0]["transport"]["scenario"] == "stable"
    assert effective["rules"]["thresholds"]["heart_rate"]["delay_s"] == 10


def test_check_errors_are_one_line_naming_file_and_key(tmp_path):
    cfg = minimal(tmp_path)
    cfg["mqtt"]["prot"] = 1883
    path = write_config(tmp_path, cfg)
    rc, out, err = run("check", "--config", path)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1
    assert path in err and "mqtt.prot: unknown key" in err

    cfg = minimal(tmp_path, mqtt={"host": "broker.example"})
    rc, _, err = run("check", "--config", write_config(tmp_path, cfg))
    assert rc == 2 and "mqtt.tls: required" in err

    rc, _, err = run("check", "--config", str(tmp_path / "missing.json"))
    assert rc == 2 and "missing.json" in err and "cannot open" in err


def test_check_refuses_a_codec_that_cannot_read_what_the_transport_delivers(tmp_path):
    ble = {"id": "hrm", "patient": "p-1",
           "transport": {"type": "ble", "address": "C0:FF:EE:00:00:01"}, "codec": {"type": "jsonl"}}
    rc, out, err = run("check", "--config", write_config(tmp_path, minimal(tmp_path, devices=[ble])))
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert 'devices[0].codec: the ble transport needs a codec that decodes GATT characteristics' in err

    tcp = {"id": "conv", "patient": "p-1", "transport": {"type": "tcp", "host": "127.0.0.1",
                                                         "port": 4001}, "codec": {"type": "gatt"}}
    rc, out, err = run("check", "--config", write_config(tmp_path, minimal(tmp_path, devices=[tcp])))
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert 'devices[0].codec: "gatt" decodes BLE characteristics; this transport delivers a byte stream' in err

    del ble["codec"]
    rc, out, err = run("check", "--config", write_config(tmp_path, minimal(tmp_path, devices=[ble])))
    assert rc == 0, err  # the ble transport's default codec is gatt


def test_check_refuses_world_readable_key(tmp_path):
    for name in ("ca.crt", "c.crt", "c.key"):
        (tmp_path / name).write_text("x")
    os.chmod(tmp_path / "c.key", 0o644)
    cfg = minimal(tmp_path, mqtt={"host": "broker.example",
                                  "tls": {"ca_file": "ca.crt", "cert_file": "c.crt", "key_file": "c.key"}})
    rc, _, err = run("check", "--config", write_config(tmp_path, cfg))
    assert rc == 2
    assert "mqtt.tls.key_file" in err and "group or others" in err and "chmod 600" in err


def test_decode_jsonl():
    rc, out, err = run("decode", "jsonl", '{"metric":"heart_rate","value":72}')
    assert rc == 0, err
    assert json.loads(out) == {"metric": "heart_rate", "value": 72, "unit": "/min"}
    rc, out, _ = run("decode", "jsonl",
                     '{"metric":"weight","value":150,"unit":"[lb_av]","ts":"2026-11-22T05:00:00.000Z"}')
    assert rc == 0
    assert json.loads(out) == {"metric": "weight", "value": 68.038856, "unit": "kg",
                               "ts": "2026-11-22T05:00:00.000Z"}


def test_decode_errors_name_the_byte_offset():
    rc, out, err = run("decode", "jsonl", '{"metric":"heart_rate","value":72')
    assert rc == 2 and out == ""
    assert "at byte 33" in err
    rc, _, err = run("decode", "nosuchcodec", "x")
    assert rc == 2 and 'unknown codec "nosuchcodec"' in err
    rc, _, err = run("decode", "jsonl", "--bogus", "1", "{}")
    assert rc == 2 and "unknown option --bogus" in err


def test_config_reference_in_docs_matches_the_binary():
    from conftest import SOURCE
    rc, out, _ = run("help", "config")
    assert rc == 0 and "### `mqtt.tls`" in out
    docs = (SOURCE / "docs" / "config.md").read_text()
    assert out.strip() in docs, "docs/config.md is stale: run scripts/gen-docs.sh"


def test_the_shipped_configuration_says_what_to_configure(tmp_path):
    from conftest import SOURCE
    shipped = json.loads((SOURCE / "config" / "vitalgate.json").read_text())
    assert "mqtt" not in shipped and shipped["devices"] == []
    rc, out, err = run("check", "--quiet", "--config", write_config(tmp_path, shipped))
    assert rc == 2 and out == ""
    line = err.strip()
    assert "\n" not in line
    assert "not configured yet: set gateway.id, the broker (mqtt) and the devices (devices[])" in line
    # A broker without devices is a valid (if idle) gateway; devices without a broker are not.
    cfg = minimal(tmp_path)
    del cfg["mqtt"]
    rc, _, err = run("check", "--config", write_config(tmp_path, cfg))
    assert rc == 2 and "mqtt: required section is missing" in err


def test_check_quiet_prints_one_line(tmp_path):
    rc, out, err = run("check", "--quiet", "--config", write_config(tmp_path, minimal(tmp_path)))
    assert rc == 0, err
    assert out.count("\n") == 1
    assert "valid: gateway gw-1, broker mqtt://127.0.0.1:1883, 1 patient, 1 device" in out
