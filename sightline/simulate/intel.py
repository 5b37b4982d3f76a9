"""Threat-intelligence files describing the simulated actor, as analysts receive them.

Two feeds that overlap, as in life: a vendor report as a STIX 2.1 bundle and a community CSV
(``indicator,type,actor,first_seen,last_seen,confidence,tlp``).  Indicators carry validity
windows (some open-ended), confidences by hosting type, TLP markings.  Stale indicators
(infrastructure retired months ago, now reassigned to benign services) and a few wrong ones
(benign addresses listed with low confidence) are mixed in.  Two actor servers are in no feed.
The real-traffic shapes (:mod:`sightline.simulate.realtraffic`) add their own: a public resolver,
a CDN edge, a cloud address and research scanners at medium confidence, a dead C2 and a relay
inside a registered organization.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..store import atomic_write_text
from .world import World

ACTOR = "RedJuliett"
ALIASES = ["Flax Typhoon", "Ethereal Panda"]
TLP_MARKINGS = {  # STIX 2.1 TLP 1.0 marking-definition ids (fixed by the standard)
    "clear": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "green": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "amber": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "red": "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}


def _stix_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _csv_time(t: dt.datetime | None) -> str:
    return "" if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sid(rng: np.random.Generator, kind: str) -> str:
    return f"{kind}--{uuid.UUID(bytes=rng.bytes(16), version=4)}"


def build_indicators(world: World, rng: np.random.Generator, start: dt.datetime) -> list[dict]:
    """One record per published indicator with the feed(s) it appears in."""
    out: list[dict] = []

    def at(s: float) -> dt.datetime:
        return start + dt.timedelta(seconds=float(s))

    for a in world.actor:
        if not a.in_intel:
            continue
        first = at(a.active_from) - dt.timedelta(days=float(rng.uniform(0, 25)))
        whole = a.active_until >= max(x.active_until for x in world.actor)
        last = (
            None
            if (whole and rng.random() < 0.5)
            else at(a.active_until) + dt.timedelta(hours=float(rng.uniform(1, 72)))
        )
        conf = {"vps": int(rng.integers(65, 96)), "soho": int(rng.integers(50, 81)), "cdn": 35}[a.hosting]
        tlp = "amber" if a.hosting != "cdn" else "green"
        feeds = ["stix"] if rng.random() < 0.65 else ["csv"]
        if rng.random() < 0.25:
            feeds = ["stix", "csv"]
        out.append(
            {
                "value": str(ipaddress.IPv4Address(a.ip)),
                "first_seen": first,
                "last_seen": last,
                "confidence": conf,
                "tlp": tlp,
                "feeds": feeds,
                "kind": f"actor:{a.role}:{a.hosting}",
                "description": f"{ACTOR} {a.role} server ({a.hosting}, AS{a.network.asn})",
            }
        )
    for ip in world.stale_ips.tolist():
        last = start - dt.timedelta(days=float(rng.uniform(30, 120)))
        out.append(
            {
                "value": str(ipaddress.IPv4Address(ip)),
                "first_seen": last - dt.timedelta(days=float(rng.uniform(60, 200))),
                "last_seen": last,
                "confidence": int(rng.integers(60, 86)),
                "tlp": "green",
                "feeds": ["stix", "csv"],
                "kind": "stale",
                "description": f"{ACTOR} C2 server (historic)",
            }
        )
    for ip, conf in zip(world.wrong_ips.tolist(), (15, 25)):
        out.append(
            {
                "value": str(ipaddress.IPv4Address(ip)),
                "first_seen": start - dt.timedelta(days=float(rng.uniform(5, 40))),
                "last_seen": None,
                "confidence": conf,
                "tlp": "clear",
                "feeds": ["csv"],
                "kind": "wrong",
                "description": "scanning activity possibly related to " + ACTOR,
            }
        )
    return out


def write_intel(
    out_dir: Path, world: World, rng: np.random.Generator, start: dt.datetime, extra: Sequence[dict] = ()
) -> tuple[list[Path], list[dict]]:
    """Write ``intel/redjuliett-report.stix.json`` and ``intel/community-feed.csv``.

    ``extra``: more indicator records (as :func:`build_indicators` makes them), published after
    the world's own."""
    inds = build_indicators(world, rng, start) + list(extra)
    out_dir.mkdir(parents=True, exist_ok=True)
    created = _stix_time(start - dt.timedelta(days=1))
    identity = _sid(rng, "identity")
    iset = _sid(rng, "intrusion-set")
    objects: list[dict] = [
        {
            "type": "identity",
            "spec_version": "2.1",
            "id": identity,
            "created": created,
            "modified": created,
            "name": "sightline simulated vendor",
            "identity_class": "organization",
        },
        {
            "type": "intrusion-set",
            "spec_version": "2.1",
            "id": iset,
            "created": created,
            "modified": created,
            "name": ACTOR,
            "aliases": ALIASES,
            "created_by_ref": identity,
            "description": "Simulated actor modelled on public reporting about RedJuliett / Flax Typhoon.",
        },
    ]
    for ind in inds:
        if "stix" not in ind["feeds"]:
            continue
        iid = _sid(rng, "indicator")
        obj = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": iid,
            "created": created,
            "modified": created,
            "created_by_ref": identity,
            "name": ind["value"],
            "description": ind["description"],
            "indicator_types": ["malicious-activity"],
            "pattern": f"[ipv4-addr:value = '{ind['value']}']",
            "pattern_type": "stix",
            "valid_from": _stix_time(ind["first_seen"]),
            "confidence": ind["confidence"],
            "object_marking_refs": [TLP_MARKINGS[ind["tlp"]]],
        }
        if ind["last_seen"] is not None:
            obj["valid_until"] = _stix_time(ind["last_seen"])
        objects.append(obj)
        objects.append(
            {
                "type": "relationship",
                "spec_version": "2.1",
                "id": _sid(rng, "relationship"),
                "created": created,
                "modified": created,
                "relationship_type": "indicates",
                "source_ref": iid,
                "target_ref": iset,
                "created_by_ref": identity,
            }
        )
    bundle = {"type": "bundle", "id": _sid(rng, "bundle"), "objects": objects}
    stix_path = out_dir / "redjuliett-report.stix.json"
    atomic_write_text(stix_path, json.dumps(bundle, indent=1) + "\n")

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["indicator", "type", "actor", "first_seen", "last_seen", "confidence", "tlp"])
    for ind in inds:
        if "csv" in ind["feeds"]:
            w.writerow(
                [
                    ind["value"],
                    "ipv4",
                    ACTOR,
                    _csv_time(ind["first_seen"]),
                    _csv_time(ind["last_seen"]),
                    ind["confidence"],
                    ind["tlp"],
                ]
            )
    csv_path = out_dir / "community-feed.csv"
    atomic_write_text(csv_path, buf.getvalue())
    return [stix_path, csv_path], inds


__all__ = ["ACTOR", "TLP_MARKINGS", "build_indicators", "write_intel"]
