"""sightline.toml: lookup order, sources of values, bounds, errors naming file and key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sightline.config import DEFAULT_DETECTION, DETECTORS, DetectorConfig, load_config, network_warnings
from sightline.errors import ConfigError

from .test_hunt_e2e import run


def test_defaults_come_from_the_detection_parameters():
    cfg = load_config(env={})
    assert cfg.path is None and set(cfg.detectors) == set(DETECTORS)
    assert cfg.detection == DEFAULT_DETECTION
    assert cfg.detector("exfiltration").threshold("min_bytes") == cfg.detection.exfil_baseline_min_bytes
    assert cfg.detector("beacon").threshold("min_score") == cfg.detection.beacon_threshold
    assert cfg.detector("beacon").threshold("min_flows") == cfg.detection.beacon_min_connections
    assert cfg.detector("exploitation").threshold("min_bytes") == cfg.detection.mid_request_bytes
    assert DetectorConfig("vpn_tunnel").threshold("min_bytes") == DEFAULT_DETECTION.tunnel_min_bytes
    assert all(src == "default" for _, _, src in cfg.rows())


@pytest.mark.parametrize(
    "knob,ran_with",
    [
        ("beacon.min_score", DEFAULT_DETECTION.beacon_threshold),
        ("beacon.min_flows", DEFAULT_DETECTION.beacon_min_connections),
        ("vpn_tunnel.min_bytes", DEFAULT_DETECTION.tunnel_min_bytes),
        ("exfiltration.min_bytes", DEFAULT_DETECTION.exfil_baseline_min_bytes),
        ("exploitation.min_bytes", DEFAULT_DETECTION.mid_request_bytes),
    ],
    ids=lambda v: str(v),
)
def test_a_knob_cannot_go_below_what_detection_ran_with(tmp_path: Path, knob: str, ran_with: float):
    section, key = knob.split(".")
    f = tmp_path / "sightline.toml"
    f.write_text(f"[detectors.{section}]\n{key} = {ran_with}\n")
    assert load_config(f, env={}).detector(section).threshold(key) == ran_with
    f.write_text(f"[detectors.{section}]\n{key} = {ran_with * 0.9}\n")
    with pytest.raises(ConfigError, match="can only be raised"):
        load_config(f, env={})


def test_config_does_not_import_detection():
    code = "import sys, sightline.config; print(sorted(m for m in sys.modules if m.startswith('sightline.detect')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_config_show_reports_where_each_value_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "sightline.toml").write_text(
        '[network]\ninternal_ranges = ["10.0.0.0/8"]\ntime_offsets = { edge-1 = -3.5 }\n'
        "[detectors.beacon]\nmin_score = 0.75\n"
    )
    monkeypatch.setenv("SIGHTLINE_DETECTORS__SCAN__ENABLED", "false")
    monkeypatch.delenv("SIGHTLINE_CONFIG", raising=False)
    res = run(["config", "show", "--json", "--workspace", str(ws)])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    f = ws / "sightline.toml"
    assert shown["network.internal_ranges"] == {"value": ["10.0.0.0/8"], "source": f"{f}:network.internal_ranges"}
    assert shown["network.time_offsets"] == {"value": {"edge-1": -3.5}, "source": f"{f}:network.time_offsets"}
    assert shown["detectors.beacon.min_score"] == {"value": 0.75, "source": f"{f}:detectors.beacon.min_score"}
    assert shown["detectors.scan.enabled"] == {"value": False, "source": "env:SIGHTLINE_DETECTORS__SCAN__ENABLED"}
    assert shown["detectors.exfiltration.min_bytes"] == {
        "value": DEFAULT_DETECTION.exfil_baseline_min_bytes,
        "source": "default",
    }
    table = run(["config", "show", "--workspace", str(ws)])
    assert table.exit_code == 0 and "default" in table.stdout and "env:" in table.stdout


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def cfg_at(p: Path, window: int) -> Path:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"[dedup]\nwindow_s = {window}\n")
        return p

    cwd, ws = tmp_path / "cwd", tmp_path / "ws"
    cfg_at(cwd / "sightline.toml", 1)
    monkeypatch.chdir(cwd)
    assert load_config(env={}, workspace=ws).dedup_window_s == 1  # ./sightline.toml
    cfg_at(ws / "sightline.toml", 2)
    assert load_config(env={}, workspace=ws).dedup_window_s == 2  # workspace beats cwd
    env_file = cfg_at(tmp_path / "env.toml", 3)
    assert load_config(env={"SIGHTLINE_CONFIG": str(env_file)}, workspace=ws).dedup_window_s == 3
    explicit = cfg_at(tmp_path / "x.toml", 4)
    assert load_config(explicit, env={"SIGHTLINE_CONFIG": str(env_file)}, workspace=ws).dedup_window_s == 4
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="SIGHTLINE_CONFIG"):
        load_config(env={"SIGHTLINE_CONFIG": str(tmp_path / "gone.toml")})


@pytest.mark.parametrize(
    "text, key, message",
    [
        ("[detectors.beacon]\nmin_score = 0.1\n", "detectors.beacon.min_score", "can only be raised"),
        ("[detectors.beacon]\nmin_score = 7\n", "detectors.beacon.min_score", "out of bounds"),
        ('[detectors.beacon]\nenabled = "maybe"\n', "detectors.beacon.enabled", "true or false"),
        ("[detectors.bogus]\nenabled = false\n", "detectors.bogus.enabled", "unknown key"),
        ("[detectors.scan]\nthreshold = 3\n", "detectors.scan.threshold", "unknown detector setting"),
        ('[network]\ninternal_ranges = ["10.0.0.0/33"]\n', "network.internal_ranges", "not an IP address or CIDR"),
        ("[network]\ninternal_ranges = 10\n", "network.internal_ranges", "list of strings"),
        ("[network]\ntime_offsets = { s1 = 999999 }\n", "network.time_offsets.s1", "out of bounds"),
        ("[dedup]\nwindow_s = -1\n", "dedup.window_s", "out of bounds"),
        ("[typo]\nx = 1\n", "typo.x", "unknown key"),
    ],
    ids=[
        "below-detection",
        "above-1",
        "not-bool",
        "unknown-detector",
        "unknown-knob",
        "bad-cidr",
        "not-list",
        "offset-bounds",
        "negative-window",
        "unknown-section",
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, key: str, message: str):
    p = tmp_path / "sightline.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert e.value.path == str(p) and e.value.field == key and message in str(e.value)


def test_bad_toml_and_bad_env_value(tmp_path: Path):
    p = tmp_path / "sightline.toml"
    p.write_text("[network\n")
    with pytest.raises(ConfigError, match="not valid TOML") as e:
        load_config(p, env={})
    assert e.value.path == str(p)
    with pytest.raises(ConfigError) as e2:
        load_config(env={"SIGHTLINE_DEDUP__WINDOW_S": "soon"})
    assert e2.value.path == "SIGHTLINE_DEDUP__WINDOW_S" and e2.value.field == "dedup.window_s"


def test_config_show_bad_file_exits_2(tmp_path: Path):
    p = tmp_path / "c.toml"
    p.write_text("[detectors.scan]\nmin_flows = 0\n")
    res = run(["config", "show", "--config", str(p), "--workspace", str(tmp_path / "ws")])
    assert res.exit_code == 2 and "detectors.scan.min_flows" in res.output


def test_missing_network_context_is_said_loudly(tmp_path: Path):
    cfg = load_config(env={})
    (w,) = network_warnings(cfg, registry_orgs=0)
    assert "no internal ranges" in w and "10.0.0.0/8" in w and "orgs load" in w
    assert network_warnings(cfg, registry_orgs=3) == []
    p = tmp_path / "c.toml"
    p.write_text('[network]\ninternal_ranges = ["192.0.2.0/24"]\n')
    assert network_warnings(load_config(p, env={}), registry_orgs=0) == []
    res = run(["config", "show", "--workspace", str(tmp_path / "empty-ws")])
    assert res.exit_code == 0 and "no internal ranges" in res.output


def test_digest_changes_with_effective_values(tmp_path: Path):
    p = tmp_path / "c.toml"
    p.write_text("[dedup]\nwindow_s = 3600\n")
    assert load_config(p, env={}).digest() == load_config(env={}).digest()  # same values as the defaults
    p.write_text("[dedup]\nwindow_s = 60\n")
    assert load_config(p, env={}).digest() != load_config(env={}).digest()
