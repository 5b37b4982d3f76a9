"""Campaign simulator: telemetry, intel, organization registry and ground truth for one seed.

Nobody hands out labelled traffic of a state-sponsored campaign, so sightline makes its own,
modelled on public reporting about RedJuliett / Flax Typhoon (2023-24).  :func:`simulate`
builds a world (organizations in real Taiwanese and other national ASNs, actor servers on real
VPS providers and compromised SOHO routers), generates the actor's activity against its victims
and benign background traffic hour by hour, and streams them to disk in the requested formats.
Four shapes of real traffic join them (:mod:`sightline.simulate.realtraffic`): popular services
and research scanners the intel names by mistake, refused callbacks to a dead C2, and a listed
relay inside a registered organization, each with the truth an analyst would write.

Output layout::

    DIR/telemetry/<sensor>/conn.<YYYY-MM-DD>.<log|json>   one file per sensor and day
    DIR/intel/redjuliett-report.stix.json                  STIX 2.1 bundle (vendor report)
    DIR/intel/community-feed.csv                           indicator,type,actor,first_seen,...
    DIR/orgs.csv                                           org_id,name,sector,country,cidr
    DIR/truth.json                                         verdict per organization and host (plus the
                                                           world: actor servers, confounders, and
                                                           ``real_traffic``: the four shapes' parties)

Memory stays bounded for any ``flows``: background is generated one hour at a time in
numpy and written chunk by chunk; only the campaign (thousands to tens of thousands of flows)
is held whole.  The same seed and parameters give byte-identical output; the flows (not the
Zeek uids) are also the same whatever ``chunk_flows`` is.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import ipaddress
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..store import atomic_write_json, atomic_write_text
from . import frames as F
from .background import Background
from .campaign import generate_campaign
from .intel import write_intel
from .realtraffic import generate_real_traffic
from .world import VERDICTS, World, build_world
from .writers import FlowWriter, get_writer, writers


@dataclass(frozen=True)
class Knobs:
    """Difficulty and scale parameters of a scenario (defaults are realistic, not easy).

    Every field is also a ``sightline simulate`` option (``--nat-share`` for ``nat_share``).
    """

    victims: int = field(default=28, metadata={"help": "Organizations the actor targets."})
    bystanders: int = field(default=120, metadata={"help": "Uninvolved organizations in the registry."})
    compromised_share: float = field(
        default=0.25,
        metadata={
            "help": "Share of victims compromised; the rest split between exploitation attempts and reconnaissance."
        },
    )
    actor_ips: int = field(default=32, metadata={"help": "Actor servers (VPS, SOHO routers); plus one CDN-fronted C2."})
    sensors: int = field(
        default=3, metadata={"help": "Sensors; each sees some organizations and has its own clock skew."}
    )
    nat_share: float = field(
        default=0.4, metadata={"help": "Share of organizations whose clients leave through 1-3 NAT addresses."}
    )
    v6_share: float = field(
        default=0.2, metadata={"help": "Share of organizations (in v6-capable ISPs) with an IPv6 /48."}
    )
    v6_flow_share: float = field(
        default=0.15, metadata={"help": "Share of such organizations' outbound flows over IPv6."}
    )
    scanner_share: float = field(
        default=0.05, metadata={"help": "Share of background flows from benign internet-wide scanners."}
    )
    long_share: float = field(
        default=0.02, metadata={"help": "Share of benign outbound flows that are long-lived sessions."}
    )
    missing_reverse_rate: float = field(
        default=0.01, metadata={"help": "Share of flows without reverse bytes/packets (unset)."}
    )
    sampling: int = field(default=1, metadata={"help": "1:N flow sampling on sampled sensors (1 = every flow kept)."})
    sampled_sensor_share: float = field(
        default=0.34, metadata={"help": "Share of sensors that sample (when --sampling > 1)."}
    )
    max_skew_s: float = field(
        default=90.0, metadata={"help": "Sensor clocks are off by up to this many seconds (uniform ±)."}
    )
    corrupt_rate: float = field(
        default=0.0005, metadata={"help": "Share of records written truncated or with a garbled field."}
    )
    start: str = field(default="2024-03-04", metadata={"help": "First day of the window (UTC date)."})
    chunk_flows: int = field(
        default=500_000, metadata={"help": "Flows per generation chunk (memory bound; output does not depend on it)."}
    )

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name.endswith(("_share", "_rate")) and not (0.0 <= float(v) <= 1.0):
                raise ConfigError(f"{f.name} must be between 0 and 1, got {v}", field=f.name)
        if self.victims < 1 or self.bystanders < 0 or self.sensors < 1 or self.actor_ips < 1:
            raise ConfigError("victims, sensors and actor_ips must be at least 1, bystanders at least 0")
        if self.sampling < 1 or self.chunk_flows < 1000 or self.max_skew_s < 0:
            raise ConfigError("sampling must be >= 1, chunk_flows >= 1000, max_skew_s >= 0")
        try:
            dt.date.fromisoformat(self.start)
        except ValueError as e:
            raise ConfigError(f"start must be a date like 2024-03-04, got {self.start!r}", field="start") from e


@dataclass
class SimulationResult:
    """Where a simulation wrote its files, and what it wrote."""

    out_dir: Path
    telemetry: list[Path]
    intel: list[Path]
    orgs: Path
    truth: Path
    flows: int = 0  # records written (after sampling), corrupt ones included
    seconds: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)
    geo: list[Path] = field(default_factory=list)  # the world's networks as range CSVs (geo load)


def _impair(frame: F.Frame, rng: np.random.Generator, knobs: Knobs, sampled: np.ndarray) -> F.Frame:
    """What sensors do to flows: sampling, missing reverse direction, corrupt records."""
    n = F.size(frame)
    if knobs.sampling > 1 and sampled.any():
        keep = ~sampled[frame["sensor"]] | (rng.random(n) < 1.0 / knobs.sampling)
        frame = F.take(frame, np.nonzero(keep)[0])
        n = F.size(frame)
    miss = rng.random(n) < knobs.missing_reverse_rate
    frame["bin"][miss] = -1
    frame["pin"][miss] = -1
    r = rng.random(n)
    frame["corrupt"] = np.where(r < knobs.corrupt_rate / 2, 1, np.where(r < knobs.corrupt_rate, 2, 0)).astype(np.uint8)
    return frame


PIECE_FLOWS = 200_000
"""Background is generated in pieces of at most this many flows (each with its own seed)."""

_RANK = {v: i for i, v in enumerate(("none",) + tuple(reversed(VERDICTS)))}


def observed_truth(frame: F.Frame, world: World) -> tuple[dict[str, str], dict[str, str]]:
    """Verdict per organization and host from the actor flows that reached the output intact.

    The scenario's intent can be thinned away by sampling or corruption; truth describes what
    the telemetry holds, so a perfect detector can reach it.
    """
    ok = frame["corrupt"] == 0
    label = frame["label"][ok]
    verdict = np.select([np.isin(label, F.CALLBACK_LABELS), label == 11, label == 10], [3, 2, 1], 0)
    inbound = np.isin(label, F.INBOUND_LABELS)
    host = np.where(inbound, frame["d_lo"][ok], frame["s_lo"][ok])
    org = frame["org"][ok]
    names = ("none", "reconnaissance", "exploitation_attempt", "compromised")
    orgs: dict[str, str] = {}
    for o in np.unique(org[verdict > 0]).tolist():
        orgs[world.orgs[o].org_id] = names[int(verdict[org == o].max())]
    hosts: dict[str, str] = {}
    sel = verdict > 0
    if sel.any():
        uh, inv = np.unique(host[sel], return_inverse=True)
        best = np.zeros(len(uh), np.int64)
        np.maximum.at(best, inv, verdict[sel])
        hosts = {str(ipaddress.IPv4Address(int(h))): names[int(b)] for h, b in zip(uh.tolist(), best.tolist())}
    return orgs, hosts


def _orgs_csv(world: World) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["org_id", "name", "sector", "country", "cidr"])
    for o in world.orgs:
        for c in o.cidrs:
            w.writerow([o.org_id, o.name, o.sector, o.country, c])
    return buf.getvalue()


def simulate(
    out_dir: Path,
    *,
    seed: int = 7,
    flows: int = 200_000,
    days: int = 7,
    formats: tuple[str, ...] = ("zeek_tsv",),
    **knobs: Any,
) -> SimulationResult:
    """Write a complete scenario (telemetry, intel, orgs.csv, truth.json) to ``out_dir``.

    Parameters
    ----------
    out_dir
        Output directory; its ``telemetry/`` subdirectory is replaced.
    seed
        Same seed, same parameters: byte-identical output.
    flows
        Flows in the scenario before sampling (campaign included; the background fills up to
        this number).
    days
        Length of the observation window.
    formats
        Output formats (see :func:`sightline.simulate.writers.writers`); sensors take them in
        turn, so every flow is written once.
    **knobs
        Fields of :class:`Knobs`.

    Returns
    -------
    SimulationResult
    """
    t_start = time.perf_counter()
    unknown = set(knobs) - {f.name for f in dataclasses.fields(Knobs)}
    if unknown:
        raise ConfigError(
            f"unknown simulation parameter(s): {', '.join(sorted(unknown))}", hint="see `sightline simulate --help`"
        )
    k = Knobs(**knobs)
    k.validate()
    if flows < 0 or days < 1:
        raise ConfigError("flows must be >= 0 and days >= 1")
    formats = tuple(formats) or ("zeek_tsv",)
    known = writers()
    bad = [f for f in formats if f not in known]
    if bad:
        raise ConfigError(f"unknown output format(s): {', '.join(bad)}", hint=f"choose from {', '.join(sorted(known))}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    ss = np.random.SeedSequence(seed)
    # streams 0-5 as before the real-traffic shapes, which draw from 6 and 7: a seed's campaign
    # and background pools stay what they were
    r_world, r_camp, r_imp, r_intel, r_hours, r_bg, r_real, r_real_imp = (np.random.default_rng(s) for s in ss.spawn(8))
    n_sensors = max(k.sensors, len(formats))
    world = build_world(
        r_world,
        days=days,
        victims=k.victims,
        bystanders=k.bystanders,
        compromised_share=k.compromised_share,
        nat_share=k.nat_share,
        v6_share=k.v6_share,
        sensors=n_sensors,
        max_skew_s=k.max_skew_s,
        actor_ips=k.actor_ips,
    )
    start = dt.datetime.combine(dt.date.fromisoformat(k.start), dt.time(), tzinfo=dt.UTC)
    epoch = start.timestamp()
    span = days * 86400.0
    n_sampled = int(round(k.sampled_sensor_share * n_sensors)) if k.sampling > 1 else 0
    sampled = np.zeros(n_sensors, bool)
    sampled[r_world.permutation(n_sensors)[:n_sampled]] = True
    skew_us = np.round(world.skews_s * 1e6).astype(np.int64)

    camp = generate_campaign(r_camp, world, span, epoch)
    camp_frame = _impair(camp.frame, r_imp, k, sampled)
    bg = Background(world, r_bg, scanner_share=k.scanner_share, v6_flow_share=k.v6_flow_share, long_share=k.long_share)
    real = generate_real_traffic(r_real, world, bg, span=span, epoch_s=epoch, start=start, flows=flows)
    n_camp = F.size(camp.frame) + F.size(real.frame)
    real_frame = _impair(real.frame, r_real_imp, k, sampled)
    n_campaign = F.size(camp_frame)
    camp_frame = F.concat([camp_frame, real_frame])
    org_truth, host_truth = observed_truth(camp_frame, world)

    intel_paths, indicators = write_intel(out_dir / "intel", world, r_intel, start, extra=real.indicators)
    orgs_path = out_dir / "orgs.csv"
    atomic_write_text(orgs_path, _orgs_csv(world))

    hours = days * 24
    hw = bg.hourly_weights(hours, start.weekday())
    per_hour = (
        r_hours.multinomial(max(0, flows - n_camp), hw / hw.sum()) if flows > n_camp else np.zeros(hours, np.int64)
    )
    camp_hour = ((camp_frame["ts"] // 1_000_000 - int(epoch)) // 3600).clip(0, hours - 1)

    tel_dir = out_dir / "telemetry"
    if tel_dir.exists():
        shutil.rmtree(tel_dir)
    open_w: dict[tuple[int, int], tuple[FlowWriter, Path]] = {}
    done: list[Path] = []
    fmt_of = [get_writer(formats[i % len(formats)]) for i in range(n_sensors)]
    written = 0

    def writer_for(sensor: int, day: int) -> FlowWriter:
        key = (sensor, day)
        if key not in open_w:
            spec = fmt_of[sensor]
            d = start + dt.timedelta(days=day)
            final = tel_dir / world.sensors[sensor] / f"conn.{d:%Y-%m-%d}.{spec.suffix}"
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.tmp")
            ctx = {
                "seed": int(np.random.SeedSequence([seed, sensor, day]).generate_state(1)[0]),
                "opened": d,
                "closed": d + dt.timedelta(days=1),
            }
            open_w[key] = (spec.open(tmp, ctx), final)
        return open_w[key][0]

    def close_before(day: int) -> None:
        for key in sorted(kk for kk in open_w if kk[1] < day):
            w, final = open_w.pop(key)
            w.close()
            os.replace(w.path, final)
            done.append(final)

    def emit(frame: F.Frame) -> None:
        nonlocal written
        if F.size(frame) == 0:
            return
        day = ((frame["ts"] // 1_000_000 - int(epoch)) // 86400).clip(0, days - 1)
        obs_ts = frame["ts"] + skew_us[frame["sensor"]]
        key = frame["sensor"].astype(np.int64) * days + day
        order = np.lexsort((obs_ts, key))
        frame = F.take(frame, order)
        key = key[order]
        table = F.to_arrow(frame, skew_us, world.sensors)
        bounds = np.flatnonzero(np.diff(key)) + 1
        for a, b in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(key)]])):
            kk = int(key[a])
            writer_for(kk // days, kk % days).write(table.slice(int(a), int(b - a)))
        written += F.size(frame)

    try:
        h = 0
        while h < hours:
            h1, count = h, 0
            while h1 < hours and (count == 0 or count + per_hour[h1] <= k.chunk_flows):
                count += int(per_hour[h1])
                h1 += 1
            close_before(h // 24)
            parts = []
            for hh in range(h, h1):
                # fixed-size pieces with their own seeds: memory stays bounded however busy an
                # hour is, and the flows do not depend on chunk_flows
                for piece, a in enumerate(range(0, int(per_hour[hh]), PIECE_FLOWS)):
                    r = np.random.default_rng(np.random.SeedSequence([seed, 1000 + hh, piece]))
                    part = bg.hour(r, hh, min(PIECE_FLOWS, int(per_hour[hh]) - a), epoch, start.weekday())
                    parts.append(_impair(part, r, k, sampled))
                    if sum(F.size(x) for x in parts) >= k.chunk_flows:
                        emit(F.concat(parts))
                        parts = []
            sel = np.nonzero((camp_hour >= h) & (camp_hour < h1))[0]
            parts.append(F.take(camp_frame, sel))
            emit(F.concat(parts))
            h = h1
        close_before(days + 1)
    except BaseException:
        for w, _final in open_w.values():
            w.close()
            Path(w.path).unlink(missing_ok=True)
        raise

    uni = [o.org_id for o in world.orgs]
    truth = {
        "schema": "sightline.truth/1",
        "seed": seed,
        "window": {
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "parameters": {"flows": flows, "days": days, "formats": list(formats), **dataclasses.asdict(k)},
        "organizations": org_truth,
        "hosts": host_truth,
        "universe": uni,
        "scenario": {**{o.org_id: o.scenario for o in world.orgs if o.scenario != "none"}, **real.intended},
        "actor_infrastructure": [
            {
                "ip": str(ipaddress.IPv4Address(a.ip)),
                "role": a.role,
                "hosting": a.hosting,
                "asn": a.network.asn,
                "country": a.network.country,
                "active_from": (start + dt.timedelta(seconds=a.active_from)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "active_until": (start + dt.timedelta(seconds=a.active_until)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "in_intel": a.in_intel,
                "shared": a.shared,
            }
            for a in world.actor
        ],
        "confounders": {
            "stale_indicators": [str(ipaddress.IPv4Address(int(x))) for x in world.stale_ips],
            "wrong_indicators": [str(ipaddress.IPv4Address(int(x))) for x in world.wrong_ips],
            "benign_scanners": [str(ipaddress.IPv4Address(int(x))) for x in world.scanner_ips],
        },
        "sensors": [
            {
                "name": s,
                "format": fmt_of[i].name,
                "skew_s": float(world.skews_s[i]),
                "sampling": k.sampling if sampled[i] else 1,
            }
            for i, s in enumerate(world.sensors)
        ],
        "org_details": {
            o.org_id: {
                "asn": o.network.asn,
                "nat": o.nat,
                "edge_product": o.edge_product[0],
                "sensor": world.sensors[o.sensor],
            }
            for o in world.orgs
        },
        "real_traffic": real.truth,
        "counts": {
            "flows_written": written,
            "campaign_flows": n_campaign,
            "campaign_flows_generated": F.size(camp.frame),
            "real_traffic_flows": F.size(real_frame),
            "real_traffic_flows_generated": F.size(real.frame),
            "indicators": len(indicators),
        },
    }
    truth_path = out_dir / "truth.json"
    atomic_write_json(truth_path, truth)
    verdicts = {v: sum(1 for x in org_truth.values() if x == v) for v in VERDICTS}
    from .geo import write_geo_tables

    geo_paths = write_geo_tables(out_dir / "geo")
    return SimulationResult(
        out_dir,
        sorted(done),
        intel_paths,
        orgs_path,
        truth_path,
        written,
        time.perf_counter() - t_start,
        verdicts,
        geo_paths,
    )


__all__ = ["Knobs", "SimulationResult", "simulate", "observed_truth", "writers"]
