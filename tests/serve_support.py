"""Shared set-up for the serve tests: a workspace with findings, indicators, runs and users."""

from __future__ import annotations

import copy
import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa

from sightline.schema import INDICATOR_SCHEMA
from sightline.serve.users import UserStore
from sightline.store import Workspace, atomic_write_json, atomic_write_parquet

with warnings.catch_warnings():
    # Starlette 1.x warns at import that it prefers the httpx2 package; httpx still works.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["TestClient", "findings", "make_workspace", "PASSWORDS", "RED_TRACES"]

SAMPLE = Path(__file__).parent / "data" / "sample_findings.json"
PASSWORDS = {"admin": "admin-pass-123", "ana": "analyst-pass-123", "vic": "viewer-pass-123"}

# Strings that only the TLP:RED parts of the findings contain: none may reach a user
# without red clearance, in any page, API answer or export.
RED_TRACES = (
    "Digital United",
    "AS4780",
    "2001:db8:1::10",
    "192.0.2.66",
    "4780",
    "telecom",
    "Red Mixed Beacon",
    "198.51.100.250",
)


def findings() -> dict[str, Any]:
    """The sample findings plus a mixed org (amber exploitation, red beacon) and exposure."""
    doc = json.loads(SAMPLE.read_text("utf-8"))
    doc["organizations"].append(
        {
            "org_id": "tw-gov-03",
            "name": "Ministry of <script>alert(1)</script> Affairs",
            "sector": "government",
            "country": "TW",
            "asns": [4782],
            "verdict": "compromised",
            "confidence": 88,
            "tlp": "red",
            "first_seen": "2024-03-04T08:00:00Z",
            "last_seen": "2024-03-06T09:00:00Z",
            "hosts": [
                {
                    "ip": "203.0.113.40",
                    "verdict": "compromised",
                    "confidence": 88,
                    "tlp": "red",
                    "first_seen": "2024-03-04T08:00:00Z",
                    "last_seen": "2024-03-06T09:00:00Z",
                    "indicators": ["198.51.100.7", "198.51.100.250"],
                    "evidence": [
                        {
                            "behaviour": "exploitation",
                            "indicator": "198.51.100.7",
                            "actor": "RedJuliett",
                            "direction": "inbound",
                            "dst_port": 4433,
                            "flows": 2,
                            "bytes_out": 900,
                            "bytes_in": 4000,
                            "first_seen": "2024-03-04T08:00:00Z",
                            "last_seen": "2024-03-04T08:02:00Z",
                            "score": 0.7,
                            "detail": '=HYPERLINK("http://evil") payload',
                            "tlp": "amber",
                            "indicator_confidence": 80,
                            "confidence": 70,
                        },
                        {
                            "behaviour": "beacon",
                            "indicator": "198.51.100.250",
                            "actor": "RedJuliett",
                            "direction": "outbound",
                            "dst_port": 443,
                            "flows": 300,
                            "bytes_out": 50000,
                            "bytes_in": 900000,
                            "first_seen": "2024-03-05T00:00:00Z",
                            "last_seen": "2024-03-06T09:00:00Z",
                            "score": 0.95,
                            "detail": "Red Mixed Beacon interval 600s",
                            "tlp": "red",
                            "indicator_confidence": 80,
                            "confidence": 88,
                        },
                    ],
                }
            ],
        }
    )
    doc["suspected_infrastructure"].append(
        {
            "ip": "192.0.2.201",
            "score": 0.5,
            "hosts": 1,
            "host_ips": ["203.0.113.40"],
            "organizations": ["tw-gov-03"],
            "ports": [992],
            "reason": "SoftEther-like sessions",
            "tlp": "red",
        }
    )
    doc["exposure"] = [
        {
            "org_id": "tw-semi-01",
            "ip": "203.0.113.5",
            "port": 443,
            "product": "FortiOS",
            "version": "7.0.1",
            "cves": ["CVE-2022-42475"],
            "kev": True,
            "actor_linked": True,
            "tlp": "amber",
        },
        {
            "org_id": "AS4780",
            "ip": "2001:db8:1::1",
            "port": 443,
            "product": "Ivanti Connect Secure",
            "version": "22.3",
            "cves": ["CVE-2024-21887"],
            "kev": True,
            "actor_linked": True,
            "tlp": "red",
        },
    ]
    return copy.deepcopy(doc)


def _indicator(value: str, tlp: str, conf: int = 80) -> dict[str, Any]:
    return {
        "indicator_id": f"test:ipv4:{value}",
        "type": "ipv4",
        "value": value,
        "actor": "RedJuliett",
        "valid_from": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "valid_until": None,
        "confidence": conf,
        "tlp": tlp,
        "source": "test-feed",
        "source_id": value,
        "description": None,
        "revoked": False,
        "imported_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
    }


def make_workspace(root: Path, *, with_users: bool = True) -> Workspace:
    """A workspace with findings, an indicator table, two run records, a manifest and users."""
    ws = Workspace(root).ensure()
    atomic_write_json(ws.findings_dir / "latest.json", findings())
    rows = [
        _indicator("198.51.100.7", "amber"),
        _indicator("192.0.2.66", "red", 70),
        _indicator("198.51.100.250", "red"),
        _indicator("198.51.100.99", "green", 60),
    ]
    table = pa.Table.from_pylist(rows, schema=INDICATOR_SCHEMA)
    atomic_write_parquet(ws.indicators_path, table)
    atomic_write_json(
        ws.runs_dir / "20240308T000000Z-aaaaaa.json",
        {
            "run_id": "20240308T000000Z-aaaaaa",
            "started_at": "2024-03-08T00:00:00Z",
            "command": "hunt",
            "counts": {"flows": 200000, "quarantined": 3, "organizations_affected": 3},
            "stages": [
                {"stage": "ingest", "rows": 200000, "seconds": 1.5},
                {"stage": "detect", "rows": 5, "seconds": 0.4},
            ],
            "quarantined": 3,
        },
    )
    ws.write_manifest(
        {
            "version": 1,
            "files": {
                "abc": {
                    "sha256": "abc",
                    "source_file": "conn.log",
                    "format": "zeek",
                    "rows": 200000,
                    "quarantined": 3,
                    "parts": [],
                    "ingested_at": "2024-03-08T00:00:00Z",
                }
            },
        }
    )
    if with_users:
        store = UserStore(ws)
        store.add("admin", PASSWORDS["admin"], role="admin", clearance="red")
        store.add("ana", PASSWORDS["ana"], role="analyst", clearance="amber")
        store.add("vic", PASSWORDS["vic"], role="viewer", clearance="amber")
    return ws
