"""``sightline.toml``: one typed, bounds-checked configuration with a single source of defaults.

Public API::

    load_config(path=None, *, workspace=None, env=None) -> Config
    DetectionParams / DEFAULT_DETECTION               # thresholds detect and assess run with
    Config.rows() -> list[(key, value, source)]      # what ``sightline config show`` prints
    Config.digest() -> str                            # recorded in findings.json
    network_warnings(config, registry_orgs) -> list[str]

Lookup order for the file (first that exists wins): ``--config PATH``, ``$SIGHTLINE_CONFIG``,
``<workspace>/sightline.toml``, ``./sightline.toml``.  An explicit path that does not exist is
an error; the others are optional.  Single keys can be overridden from the environment with
``SIGHTLINE_<SECTION>__<KEY>`` (``__`` between levels), e.g.
``SIGHTLINE_DETECTORS__BEACON__ENABLED=false``.

Defaults live here only.  The thresholds detection and assessment run with are
:class:`DetectionParams` (passed into :func:`sightline.detect.run_detection`,
:func:`sightline.assess.assess`, the behaviour functions, pivoting and the verdict rule); the
detector knobs of ``[detectors.*]`` take their defaults and lower bounds from the same object.
Detector tuning is applied to the findings after detection (:mod:`sightline.suppress`), so a
threshold can only be *raised* above the value detection ran with; a lower value is rejected
with a message saying so.

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

    [intel]
    include_non_ids = ["eset-*.json"]   # sources whose MISP to_ids = false attributes load too
                                        # (true: every source; `intel add --include-non-ids`)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.tlp import DEFAULT_TLP, TLP, TLPError, parse_tlp
from .errors import ConfigError
from .net import parse_network

CONFIG_NAME = "sightline.toml"
ENV_CONFIG = "SIGHTLINE_CONFIG"
ENV_PREFIX = "SIGHTLINE_"

DETECTORS = ("beacon", "long_connection", "vpn_tunnel", "exfiltration", "callback", "exploitation", "scan")


@dataclass(frozen=True)
class DetectionParams:
    """The thresholds detection, assessment, pivoting and the verdict rule run with.

    One object, passed down (``params=``) from the pipeline; every function that takes it
    defaults to :data:`DEFAULT_DETECTION`.  Not read from ``sightline.toml``: the
    ``[detectors.*]`` knobs act on the findings afterwards and can only tighten these.
    """

    # --- requests to a victim's services (exploitation) -----------------------------------
    min_request_bytes: int = 1000
    """Request payload (bytes from the initiator) above which a session carried more than a
    probe: TLS ClientHellos, IKE_SA_INIT and banner grabs stay under about 1 kB; exploit
    requests rarely do."""
    mid_request_bytes: int = 200
    """A request of this size (but under ``min_request_bytes``) counts as an exploitation
    attempt only when it is focused: the actor address touched at most ``focused_max_hosts``
    hosts and ``focused_max_ports`` ports of the organization.  In a sweep it is a banner grab."""
    focused_max_hosts: int = 2
    focused_max_ports: int = 3
    inbound_use_min: int = 10
    """Answered sessions from one address to one service of a host above which the address uses
    the service (an uptime monitor, a partner's client) rather than probing it: a scanner
    touches a port once or a few times."""

    # --- C2 patterns of a victim host --------------------------------------------------------
    beacon_min_connections: int = 6
    beacon_threshold: float = 0.6
    one_way_factor: float = 0.85
    """A beacon seen only in its request direction (replies not in the telemetry) scores this
    much of a two-way one."""
    long_session_s: float = 3600.0
    long_cumulative_s: float = 4 * 3600.0
    tunnel_min_bytes: int = 1_000_000
    tunnel_min_each_way: int = 200_000
    tunnel_min_ratio: float = 0.02
    tunnel_min_session_s: float = 600.0
    """A VPN tunnel carries sustained traffic both ways: at least ``tunnel_min_bytes`` in all,
    at least ``tunnel_min_each_way`` in each direction, and the smaller direction at least
    ``tunnel_min_ratio`` of the larger, with a session of at least ``tunnel_min_session_s``.  A
    one-way bulk download (a few kB of request, megabytes back) is not a tunnel, and neither
    are many short sessions that add up."""
    failed_callback_min: int = 10
    failed_callback_span_s: float = 300.0
    failed_callback_regular_min: int = 6
    failed_callback_regularity: float = 0.25
    failed_callback_max_score: float = 0.7
    """Refused or unanswered callbacks (S0, REJ ...) from a host to an indicator are an
    infection sign (the C2 is down or blocked) when they persist -- at least
    ``failed_callback_min`` attempts over ``failed_callback_span_s`` or on two days -- or repeat
    on a schedule (``failed_callback_regular_min`` attempts whose interval spread is at most
    ``failed_callback_regularity`` of the interval).  They score below an answered session (at
    most ``failed_callback_max_score``); one attempt stays a contact."""
    exfil_min_bytes: int = 20_000_000
    exfil_baseline_min_bytes: int = 5_000_000
    exfil_baseline_factor: float = 10.0
    """Exfiltration: at least ``exfil_min_bytes`` out (and twice what came back), or at least
    ``exfil_baseline_min_bytes`` when that is ``exfil_baseline_factor`` times the host's median
    daily outbound volume to all destinations (its baseline)."""

    # --- trust in the indicator ----------------------------------------------------------------
    popular_min_orgs: int = 5
    popular_share: float = 0.3
    """An indicator is a *popular destination* (a CDN or cloud address the actor also used) when
    at least ``popular_min_orgs`` organizations, and ``popular_share`` of the registry's, talk
    to it two-way.  Mere contact with it decides nothing; only C2-like regularity or volume
    does."""
    indicator_age_days: tuple[tuple[int, float], ...] = ((180, 1.0), (365, 0.85))
    """Evidence confidence by the indicator's age at first contact; older than a year: 0.7."""
    very_sure_confidence: int = 80
    """Intel this sure decides even on shared infrastructure, research scanners and polled
    services."""
    crowded_beacon_min: int = 20
    """On a crowded indicator (popular or shared) a beacon decides only with at least this many
    connections in its series: among many hosts using an address, some visit it at
    regular-looking times by chance (6 random visits over 3 days scored 0.61 in a test)."""
    service_share: float = 0.5
    service_min_orgs: int = 10
    """A crowded indicator that hosts of at least ``service_share`` of the registry's
    organizations (and ``service_min_orgs``) beacon to is a polled service."""
    relay_score: float = 0.8
    """Score of an address inside a registered organization that the intel names and that is
    active in the telemetry: the organization's compromised asset, as sure as the intel."""

    # --- the verdict rule (sightline.core.verdicts) ------------------------------------------
    medium_confidence: int = 50
    low_confidence: int = 30
    """STIX 2.1's None/Low/Med/High scale puts Low at 1-29: below ``low_confidence`` an
    indicator decides nothing; weak signs and anything on a crowded indicator need
    ``medium_confidence``."""
    min_targets: int = 2
    """Reconnaissance probes the organization's network: at least this many services (host x
    port) of it.  A lone probe, or one service of one host probed again and again (an ICMP
    census, a monitor), is listed, not a verdict."""
    clock_skew_s: float = 3600.0
    """Tolerance when ordering exploitation before callbacks seen by different sensors."""

    # --- infrastructure pivoting (sightline.detect.pivot) ------------------------------------
    pivot_min_hosts: int = 2
    pivot_min_score: float = 0.6
    pivot_min_regularity: float = 0.6
    pivot_max_hosts: int = 5000
    """Pivot from at most this many compromised hosts (the most confident first): beyond that
    the question "what else do they share" has no small answer."""

    def popular_threshold(self, registry_orgs: int) -> int:
        """Organizations that must talk to an indicator for it to be a popular destination."""
        return max(self.popular_min_orgs, math.ceil(self.popular_share * registry_orgs))


DEFAULT_DETECTION = DetectionParams()
"""What detection runs with unless told otherwise."""


def _detector_knobs(p: DetectionParams) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Per detector: tunable key -> (default, lower bound, upper bound).  The default and the
    lower bound are the value detection itself ran with: post-processing can only tighten."""
    return {
        "beacon": {
            "min_score": (p.beacon_threshold, p.beacon_threshold, 1.0),
            "min_flows": (p.beacon_min_connections, p.beacon_min_connections, 1e9),
        },
        "long_connection": {},
        "vpn_tunnel": {"min_bytes": (p.tunnel_min_bytes, p.tunnel_min_bytes, 1e15)},  # both directions
        # sent by the host: detection reports from exfil_baseline_min_bytes when that is far
        # above the host's usual volume, so that is the floor a configuration tightens from
        "exfiltration": {"min_bytes": (p.exfil_baseline_min_bytes, p.exfil_baseline_min_bytes, 1e15)},
        "callback": {},
        # request payload: mid_request_bytes is what a focused attempt (few hosts and ports) needs
        "exploitation": {"min_bytes": (p.mid_request_bytes, p.mid_request_bytes, 1e12)},
        "scan": {},
    }


_DETECTOR_KNOBS = _detector_knobs(DEFAULT_DETECTION)

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

    def limits(self) -> dict[str, float]:
        """The effective value of every threshold this detector has."""
        return {k: self.threshold(k) for k in {**_COMMON_KNOBS, **_DETECTOR_KNOBS.get(self.name, {})}}


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
class IntelConfig:
    """How intel sources are read: which sources load MISP ``to_ids = false`` attributes.

    ``include_non_ids`` holds source names or shell patterns (``"eset-*.json"``, ``"*"`` for
    every source; a MISP feed's source name is its URL or directory).
    """

    include_non_ids: tuple[str, ...] = ()

    def non_ids_for(self, source: str) -> bool:
        import fnmatch

        return any(fnmatch.fnmatchcase(source, pat) for pat in self.include_non_ids)


@dataclass(frozen=True)
class Config:
    """The effective configuration and where each value came from."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    allowlist: AllowlistConfig = field(default_factory=AllowlistConfig)
    sharing: SharingConfig = field(default_factory=SharingConfig)
    intel: IntelConfig = field(default_factory=IntelConfig)
    detectors: Mapping[str, DetectorConfig] = field(default_factory=dict)
    dedup_window_s: float = 3600.0
    detection: DetectionParams = DEFAULT_DETECTION
    """What detection runs with (not part of :meth:`as_dict`: not configurable)."""
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
            "intel": {"include_non_ids": list(self.intel.include_non_ids)},
            "detectors": {
                n: {
                    "enabled": self.detector(n).enabled,
                    **self.detector(n).limits(),
                }
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


def find_config_file(
    path: str | Path | None = None, *, workspace: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
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
            raise ConfigError(
                f"configuration file named by ${ENV_CONFIG} not found", path=p, hint=f"fix or unset {ENV_CONFIG}"
            )
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
        if not var.startswith(ENV_PREFIX) or "__" not in var[len(ENV_PREFIX) :]:
            continue
        key = ".".join(part.lower() for part in var[len(ENV_PREFIX) :].split("__"))
        out[key] = (_parse_env_value(text), f"env:{var}")
    return out


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict) and not prefix.endswith("time_offsets"):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj


def load_config(
    path: str | Path | None = None, *, workspace: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Config:
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
            hint = (
                f"detection already runs with {lo:g}; settings are applied to its results, so they can only be raised"
            )
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
    intel: dict[str, Any] = {}
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
                raise _err(
                    src,
                    key,
                    "unknown key",
                    "network takes internal_ranges, nat_addresses, sensor_addresses, sensors, time_offsets",
                )
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
                raise _err(src, key, "unknown detector setting", f"{name} takes enabled, {', '.join(sorted(knobs))}")
        elif parts[0] == "sharing" and parts[1:] == ["default_tlp"]:
            try:
                sharing["default_tlp"] = parse_tlp(value, what="default TLP")
            except TLPError as e:
                raise _err(src, key, e.message, e.hint) from e
        elif parts[0] == "intel" and parts[1:] == ["include_non_ids"]:
            intel["include_non_ids"] = ("*",) if value is True else () if value is False else _as_list(key, value, src)
        elif parts[0] == "dedup" and parts[1:] == ["window_s"]:
            dedup = _as_number(key, value, src, 0, 30 * 86400)
        else:
            hint = "sections: network, allowlist, sharing, intel, detectors.<" + "|".join(DETECTORS) + ">, dedup"
            raise _err(src, key, "unknown key", hint)
    for k, v in list(sources.items()):  # time_offsets entries are reported under the table key
        if k.startswith("network.time_offsets."):
            sources.setdefault("network.time_offsets", v)
    return Config(
        network=NetworkConfig(**net),
        allowlist=AllowlistConfig(**allow),
        sharing=SharingConfig(**sharing),
        intel=IntelConfig(**intel),
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
        "which hosts are yours. Assumed internal: "
        + ", ".join(config.network.assumed_internal)
        + "; other victim addresses are attributed by ASN where geo data exists, else grouped by /24 (IPv6: /48). "
        "Set [network] internal_ranges in sightline.toml or run `sightline orgs load CSV`."
    ]


__all__ = [
    "Config",
    "DetectionParams",
    "DEFAULT_DETECTION",
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
