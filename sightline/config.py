"""``sightline.toml``: one typed, bounds-checked configuration with a single source of defaults.

Public API::

    load_config(path=None, *, workspace=None, env=None) -> Config
    Config.rows() -> list[(key, value, source)]      # what ``sightline config show`` prints
    Config.digest() -> str                            # recorded in findings.json
    network_warnings(config, registry_orgs) -> list[str]

Lookup order for the file (first that exists wins): ``--config PATH``, ``$SIGHTLINE_CONFIG``,
``<workspace>/sightline.toml``, ``./sightline.toml``.  An explicit path that does not exist is
an error; the others are optional.  Single keys can be overridden from the environment with
``SIGHTLINE_<SECTION>__<KEY>`` (``__`` between levels), e.g.
``SIGHTLINE_DETECTORS__BEACON__ENABLED=false``.

Defaults are not written here: detector thresholds come from
:mod:`sightline.detect.behaviours` and :mod:`sightline.assess`, so the config and the
detectors cannot drift apart.  Detector tuning is applied to the findings after detection
(:mod:`sightline.suppress`), so a threshold can only be *raised* above the value detection ran
with; a lower value is rejected with a message saying so.

Example::

    [network]
    internal_ranges = ["10.0.0.0/8", "192.0.2.0/24"]
    nat_addresses = ["192.0.2.1"]
    sensors = ["edge-1"]
    time_offsets = { edge-1 = -3.5 }   # seconds added to that sensor's timestamps as they are
                                       # stored (its clock ran 3.5 s fast); recorded per file

    [allowlist]
    bundled = true
    files = ["/etc/sightline/our-known-good.csv"]

    [detectors.beacon]
    min_score = 0.7          # knobs: enabled, min_score, min_flows, min_confidence,
                             # min_indicator_confidence; vpn_tunnel/exfiltration/exploitation: min_bytes

    [detectors.scan]
    enabled = false

    [dedup]
    window_s = 3600

    [sharing]
    default_tlp = "amber"    # what content nobody marked counts as when findings are shared
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .detect import behaviours as _b
from .core.tlp import DEFAULT_TLP, TLP, TLPError, parse_tlp
from .errors import ConfigError
from .net import parse_network

CONFIG_NAME = "sightline.toml"
ENV_CONFIG = "SIGHTLINE_CONFIG"
ENV_PREFIX = "SIGHTLINE_"

DETECTORS = ("beacon", "long_connection", "vpn_tunnel", "exfiltration", "callback", "exploitation", "scan")

# Per detector: tunable key -> (default taken from the detector module, lower bound, upper bound).
# The lower bound is the value detection itself ran with: post-processing can only tighten.
_DETECTOR_KNOBS: dict[str, dict[str, tuple[float, float, float]]] = {
    "beacon": {"min_score": (_b.BEACON_THRESHOLD, _b.BEACON_THRESHOLD, 1.0),
               "min_flows": (_b.BEACON_MIN_CONNECTIONS, _b.BEACON_MIN_CONNECTIONS, 1e9)},
    "long_connection": {},
    "vpn_tunnel": {"min_bytes": (_b.TUNNEL_MIN_BYTES, _b.TUNNEL_MIN_BYTES, 1e15)},  # both directions
    # sent by the host: detection reports from EXFIL_BASELINE_MIN_BYTES when that is far above
    # the host's usual volume, so that is the floor a configuration tightens from
    "exfiltration": {"min_bytes": (_b.EXFIL_BASELINE_MIN_BYTES, _b.EXFIL_BASELINE_MIN_BYTES, 1e15)},
    "callback": {},
    # request payload: MID_REQUEST_BYTES is what a focused attempt (few hosts and ports) needs
    "exploitation": {"min_bytes": (_b.MID_REQUEST_BYTES, _b.MID_REQUEST_BYTES, 1e12)},
    "scan": {},
}
# Knobs every detector has; they act on the evidence row's own columns.
_COMMON_KNOBS: dict[str, tuple[float, float, float]] = {
    "min_score": (0.0, 0.0, 1.0),
    "min_flows": (1, 1, 1e9),
    "min_confidence": (0, 0, 100),  # evidence-row confidence
    "min_indicator_confidence": (0, 0, 100),
}


@dataclass(frozen=True)
class DetectorConfig:
    """Switch and thresholds of one detector (a behaviour in the evidence rows)."""

    name: str
    enabled: bool = True
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def threshold(self, key: str) -> float:
        """The effective value of one threshold (configured or default)."""
        if key in self.thresholds:
            return float(self.thresholds[key])
        knobs = {**_COMMON_KNOBS, **_DETECTOR_KNOBS.get(self.name, {})}
        return float(knobs[key][0])


@dataclass(frozen=True)
class NetworkConfig:
    """What counts as "ours": internal ranges, sensors, NAT addresses, per-sensor clock offsets."""

    internal_ranges: tuple[str, ...] = ()
    nat_addresses: tuple[str, ...] = ()
    sensor_addresses: tuple[str, ...] = ()
    sensors: tuple[str, ...] = ()
    time_offsets: Mapping[str, float] = field(default_factory=dict)
    assumed_internal: tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


@dataclass(frozen=True)
class AllowlistConfig:
    """Which allowlist layers apply: the bundled known-good set and the organization's files."""

    bundled: bool = True
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class SharingConfig:
    """How findings are shared: the TLP that content nobody marked counts as (fail closed)."""

    default_tlp: TLP = DEFAULT_TLP


@dataclass(frozen=True)
class Config:
    """The effective configuration and where each value came from."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    allowlist: AllowlistConfig = field(default_factory=AllowlistConfig)
    sharing: SharingConfig = field(default_factory=SharingConfig)
    detectors: Mapping[str, DetectorConfig] = field(default_factory=dict)
    dedup_window_s: float = 3600.0
    path: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def detector(self, name: str) -> DetectorConfig:
        return self.detectors.get(name) or DetectorConfig(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "network": {
                "internal_ranges": list(self.network.internal_ranges),
                "nat_addresses": list(self.network.nat_addresses),
                "sensor_addresses": list(self.network.sensor_addresses),
                "sensors": list(self.network.sensors),
                "time_offsets": dict(self.network.time_offsets),
            },
            "allowlist": {"bundled": self.allowlist.bundled, "files": list(self.allowlist.files)},
            "sharing": {"default_tlp": self.sharing.default_tlp.label},
            "detectors": {
                n: {"enabled": self.detector(n).enabled,
                    **{k: self.detector(n).threshold(k) for k in {**_COMMON_KNOBS, **_DETECTOR_KNOBS[n]}}}
                for n in DETECTORS
            },
            "dedup": {"window_s": self.dedup_window_s},
        }

    def rows(self) -> list[tuple[str, Any, str]]:
        """Flattened ``(key, value, source)``; source is ``default``, ``<file>:<key>`` or ``env:<VAR>``."""
        out: list[tuple[str, Any, str]] = []

        def walk(prefix: str, obj: Any) -> None:
            if isinstance(obj, dict) and obj and not prefix.endswith("time_offsets"):
                for k, v in obj.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                out.append((prefix, obj, self.sources.get(prefix, "default")))

        walk("", self.as_dict())
        return out

    def digest(self) -> str:
        """Short hash of the effective configuration (recorded with each findings document)."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


def find_config_file(path: str | Path | None = None, *, workspace: str | Path | None = None,
                     env: Mapping[str, str] | None = None) -> Path | None:
    """The configuration file that applies, or None (then defaults apply)."""
    env = os.environ if env is None else env
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("configuration file not found", path=p, hint="check --config PATH")
        return p
    if env.get(ENV_CONFIG):
        p = Path(env[ENV_CONFIG])
        if not p.is_file():
            raise ConfigError(f"configuration file named by ${ENV_CONFIG} not found", path=p,
                              hint=f"fix or unset {ENV_CONFIG}")
        return p
    for cand in ([Path(workspace) / CONFIG_NAME] if workspace is not None else []) + [Path.cwd() / CONFIG_NAME]:
        if cand.is_file():
            return cand
    return None


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def _env_overrides(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var[len(ENV_PREFIX):]:
            continue
        key = ".".join(part.lower() for part in var[len(ENV_PREFIX):].split("__"))
        out[key] = (_parse_env_value(text), f"env:{var}")
    return out


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict) and not prefix.endswith("time_offsets"):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj


def load_config(path: str | Path | None = None, *, workspace: str | Path | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and merge the configuration (defaults < file < environment).

    Raises
    ------
    ConfigError
        Unreadable TOML, an unknown key, a wrong type or an out-of-bounds value; the message
        names the file and the key.
    """
    env = os.environ if env is None else env
    cfg_path = find_config_file(path, workspace=workspace, env=env)
    flat: dict[str, tuple[Any, str]] = {}
    if cfg_path is not None:
        try:
            data = tomllib.loads(cfg_path.read_text("utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"not valid TOML: {e}", path=cfg_path, hint="fix the file's syntax") from e
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read configuration: {e}", path=cfg_path) from e
        raw: dict[str, Any] = {}
        _flatten("", data, raw)
        flat = {k: (v, f"{cfg_path}:{k}") for k, v in raw.items()}
    flat.update(_env_overrides(env))
    return _build(flat, cfg_path)


def _err(src: str, key: str, msg: str, hint: str | None = None) -> ConfigError:
    where = src.rsplit(":", 1)[0] if not src.startswith("env:") else src[4:]
    return ConfigError(msg, path=where, field=key, hint=hint)


def _as_list(key: str, value: Any, src: str, check_net: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(src, key, "expected a list of strings", 'e.g. ["10.0.0.0/8"]')
    if check_net:
        for v in value:
            try:
                parse_network(v)
            except ValueError as e:
                raise _err(src, key, f"{v!r} is not an IP address or CIDR", "use e.g. 10.0.0.0/8") from e
    return tuple(value)


def _as_number(key: str, value: Any, src: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(src, key, f"expected a number, got {value!r}")
    if not lo <= value <= hi:
        hint = None
        if lo > 0 and value < lo:
            hint = (f"detection already runs with {lo:g}; settings are applied to its results, so they can only "
                    "be raised")
        raise _err(src, key, f"{value!r} is out of bounds [{lo:g}, {hi:g}]", hint)
    return float(value)


def _as_bool(key: str, value: Any, src: str) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return value.lower() in ("true", "1", "yes", "on")
    if not isinstance(value, bool):
        raise _err(src, key, f"expected true or false, got {value!r}")
    return value


def _build(flat: dict[str, tuple[Any, str]], cfg_path: Path | None) -> Config:
    net: dict[str, Any] = {}
    allow: dict[str, Any] = {}
    sharing: dict[str, Any] = {}
    det: dict[str, dict[str, Any]] = {n: {} for n in DETECTORS}
    dedup = 3600.0
    sources: dict[str, str] = {}
    for key, (value, src) in sorted(flat.items()):
        parts = key.split(".")
        sources[key] = src
        if parts[0] == "network" and len(parts) == 2:
            name = parts[1]
            if name in ("internal_ranges", "nat_addresses", "sensor_addresses"):
                net[name] = _as_list(key, value, src, check_net=True)
            elif name == "sensors":
                net[name] = _as_list(key, value, src)
            elif name == "time_offsets":
                if not isinstance(value, dict):
                    raise _err(src, key, "expected a table sensor = seconds", "e.g. time_offsets = { edge-1 = -3.5 }")
                net[name] = {str(s): _as_number(f"{key}.{s}", v, src, -86400, 86400) for s, v in value.items()}
            else:
                raise _err(src, key, "unknown key", "network takes internal_ranges, nat_addresses, "
                           "sensor_addresses, sensors, time_offsets")
        elif parts[0] == "allowlist" and len(parts) == 2 and parts[1] in ("bundled", "files"):
            if parts[1] == "bundled":
                allow["bundled"] = _as_bool(key, value, src)
            else:
                files = _as_list(key, value, src)
                if any("\x00" in f for f in files):  # the OS refuses such a path with a bare ValueError
                    raise _err(src, key, "a file name contains a NUL character", "fix the path")
                base = cfg_path.parent if (cfg_path is not None and not src.startswith("env:")) else Path.cwd()
                allow["files"] = tuple(str((base / f).resolve()) if not Path(f).is_absolute() else f for f in files)
        elif parts[0] == "detectors" and len(parts) == 3 and parts[1] in DETECTORS:
            name, knob = parts[1], parts[2]
            knobs = {**_COMMON_KNOBS, **_DETECTOR_KNOBS[name]}
            if knob == "enabled":
                det[name]["enabled"] = _as_bool(key, value, src)
            elif knob in knobs:
                _, lo, hi = knobs[knob]
                det[name].setdefault("thresholds", {})[knob] = _as_number(key, value, src, lo, hi)
            else:
                raise _err(src, key, "unknown detector setting",
                           f"{name} takes enabled, {', '.join(sorted(knobs))}")
        elif parts[0] == "sharing" and parts[1:] == ["default_tlp"]:
            try:
                sharing["default_tlp"] = parse_tlp(value, what="default TLP")
            except TLPError as e:
                raise _err(src, key, e.message, e.hint) from e
        elif parts[0] == "dedup" and parts[1:] == ["window_s"]:
            dedup = _as_number(key, value, src, 0, 30 * 86400)
        else:
            hint = ("sections: network, allowlist, sharing, detectors.<" + "|".join(DETECTORS) + ">, dedup")
            raise _err(src, key, "unknown key", hint)
    for k, v in list(sources.items()):  # time_offsets entries are reported under the table key
        if k.startswith("network.time_offsets."):
            sources.setdefault("network.time_offsets", v)
    return Config(
        network=NetworkConfig(**net),
        allowlist=AllowlistConfig(**allow),
        sharing=SharingConfig(**sharing),
        detectors={n: DetectorConfig(n, d.get("enabled", True), d.get("thresholds", {})) for n, d in det.items()},
        dedup_window_s=dedup,
        path=cfg_path,
        sources=sources,
    )


def network_warnings(config: Config, registry_orgs: int) -> list[str]:
    """Loud notes about missing network context (no internal ranges and no registry)."""
    if config.network.internal_ranges or registry_orgs:
        return []
    return [
        "no internal ranges configured and no organization registry loaded: sightline cannot tell "
        "which hosts are yours. Assumed internal: " + ", ".join(config.network.assumed_internal)
        + "; other victim addresses are attributed by ASN where geo data exists, else grouped by /24 (IPv6: /48). "
        "Set [network] internal_ranges in sightline.toml or run `sightline orgs load CSV`."
    ]


__all__ = [
    "Config",
    "DetectorConfig",
    "NetworkConfig",
    "AllowlistConfig",
    "SharingConfig",
    "DETECTORS",
    "CONFIG_NAME",
    "load_config",
    "find_config_file",
    "network_warnings",
]
