"""Write small hand-made Zeek conn.log files for tests (TSV and JSON lines)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from sightline.simulate.writers.zeek import FIELDS, TYPES  # the conn.log header sightline writes


def conn(
    ts: float,
    src: str,
    sport: int,
    dst: str,
    dport: int,
    *,
    proto: str = "tcp",
    service: str = "-",
    duration: float | None = 1.0,
    ob: int | None = 0,
    rb: int | None = 0,
    state: str = "SF",
    op: int = 3,
    rp: int = 3,
) -> dict:
    return {
        "ts": ts,
        "uid": f"C{abs(hash((ts, src, dst, sport))) % 10**12}",
        "id.orig_h": src,
        "id.orig_p": sport,
        "id.resp_h": dst,
        "id.resp_p": dport,
        "proto": proto,
        "service": service,
        "duration": duration,
        "orig_bytes": ob,
        "resp_bytes": rb,
        "conn_state": state,
        "local_orig": "-",
        "local_resp": "-",
        "missed_bytes": 0,
        "history": "ShADadFf",
        "orig_pkts": op,
        "orig_ip_bytes": (ob or 0) + 40 * op,
        "resp_pkts": rp,
        "resp_ip_bytes": (rb or 0) + 40 * rp,
        "tunnel_parents": "(empty)",
    }


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def write_tsv(
    path: Path, rows: list[dict], *, extra_lines: list[tuple[int, str]] = (), gz: bool = False, close: bool = True
) -> Path:
    """Write a Zeek TSV log; ``extra_lines`` inserts raw lines at given data-row indices."""
    lines = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#open\t2024-03-01-00-00-00",
        "#fields\t" + "\t".join(FIELDS),
        "#types\t" + "\t".join(TYPES),
    ]
    inserts = dict(extra_lines)
    for i, r in enumerate(rows):
        if i in inserts:
            lines.append(inserts[i])
        lines.append("\t".join(_cell(r[f]) for f in FIELDS))
    if close:
        lines.append("#close\t2024-03-09-00-00-00")
    data = ("\n".join(lines) + "\n").encode()
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_json(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in rows))
    return path
