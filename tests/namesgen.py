"""Write small hand-made Zeek dns/ssl/x509 logs and Suricata eve dns/tls events for tests."""

from __future__ import annotations

import json
from pathlib import Path

DNS_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "trans_id",
    "rtt",
    "query",
    "qclass",
    "qclass_name",
    "qtype",
    "qtype_name",
    "rcode",
    "rcode_name",
    "AA",
    "TC",
    "RD",
    "RA",
    "Z",
    "answers",
    "TTLs",
    "rejected",
]
SSL_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "version",
    "cipher",
    "curve",
    "server_name",
    "resumed",
    "last_alert",
    "next_protocol",
    "established",
    "ssl_history",
    "cert_chain_fps",
    "client_cert_chain_fps",
    "sni_matches_cert",
    "validation_status",
]


def dns(
    ts: float, client: str, query: str, answers: list[str], ttls: list[float] | None = None, resolver: str = "10.0.0.53"
) -> dict:
    ttls = ttls if ttls is not None else [300.0] * len(answers)
    return {
        "ts": ts,
        "uid": f"D{int(ts * 1000) % 10**9}",
        "id.orig_h": client,
        "id.orig_p": 53000,
        "id.resp_h": resolver,
        "id.resp_p": 53,
        "proto": "udp",
        "trans_id": 1,
        "rtt": 0.01,
        "query": query,
        "qclass": 1,
        "qclass_name": "C_INTERNET",
        "qtype": 1,
        "qtype_name": "A",
        "rcode": 0,
        "rcode_name": "NOERROR",
        "AA": "F",
        "TC": "F",
        "RD": "T",
        "RA": "T",
        "Z": 0,
        "answers": answers,
        "TTLs": ttls,
        "rejected": "F",
    }


def ssl(ts: float, client: str, server: str, port: int, sni: str | None, fps: list[str]) -> dict:
    return {
        "ts": ts,
        "uid": f"S{int(ts * 1000) % 10**9}",
        "id.orig_h": client,
        "id.orig_p": 50000,
        "id.resp_h": server,
        "id.resp_p": port,
        "version": "TLSv12",
        "cipher": "TLS_AES_128_GCM_SHA256",
        "curve": "x25519",
        "server_name": sni,
        "resumed": "F",
        "last_alert": None,
        "next_protocol": None,
        "established": "T",
        "ssl_history": "CsiI",
        "cert_chain_fps": fps,
        "client_cert_chain_fps": [],
        "sni_matches_cert": None,
        "validation_status": "self signed certificate",
    }


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return ",".join(_cell(x) for x in v) if v else "(empty)"
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def write_tsv(path: Path, log: str, fields: list[str], rows: list[dict], extra: list[str] = ()) -> Path:
    lines = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        f"#path\t{log}",
        "#open\t2024-03-01-00-00-00",
        "#fields\t" + "\t".join(fields),
        "#types\t" + "\t".join(["string"] * len(fields)),
    ]
    lines += ["\t".join(_cell(r.get(f)) for f in fields) for r in rows]
    lines += list(extra)
    lines.append("#close\t2024-03-09-00-00-00")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_json(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in rows))
    return path
