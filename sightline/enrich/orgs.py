"""Organization registry: CSV ``org_id,name,sector,country,cidr`` -> ORG_SCHEMA ranges.

One row per CIDR; an organization may have many.  IPv4 and IPv6.  The longest prefix wins
when ranges nest (a university's lab inside its campus block, a customer inside an ISP).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ..errors import InputError
from ..net import parse_network
from ..schema import ORG_SCHEMA, QUARANTINE_SCHEMA
from ..store import Workspace, atomic_write_parquet

REQUIRED = ("org_id", "cidr")


@dataclass
class OrgLoad:
    table: pa.Table
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw)

    def quarantine_table(self, source: str) -> pa.Table:
        return pa.table(
            {
                "source_file": [source] * len(self.bad),
                "position": [b[0] for b in self.bad],
                "position_kind": ["line"] * len(self.bad),
                "reason": [b[1] for b in self.bad],
                "raw": [b[2][:512] for b in self.bad],
            },
            schema=QUARANTINE_SCHEMA,
        )


def load_orgs_csv(path: str | Path) -> OrgLoad:
    """Read an organization registry CSV; bad rows are returned, never fatal."""
    p = Path(path)
    try:
        text = p.read_text("utf-8-sig", errors="replace")
    except OSError as e:
        raise InputError(f"cannot read organization registry: {e}", path=p) from e
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise InputError(
            "organization registry is empty", path=p, hint="expected header org_id,name,sector,country,cidr"
        ) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(
            f"organization registry lacks column(s) {', '.join(missing)}",
            path=p,
            position=1,
            hint="expected header org_id,name,sector,country,cidr",
        )
    idx = {h: i for i, h in enumerate(header)}
    rows: dict[str, list] = {f.name: [] for f in ORG_SCHEMA}
    bad: list[tuple[int, str, str]] = []
    for line_no, rec in enumerate(reader, start=2):
        if not rec or all(not c.strip() for c in rec):
            continue
        raw = ",".join(rec)

        def get(col: str, rec: list[str] = rec) -> str:
            i = idx.get(col)
            return rec[i].strip() if i is not None and i < len(rec) else ""

        org_id = get("org_id")
        if not org_id:
            bad.append((line_no, "missing org_id", raw))
            continue
        cidrs = [c for c in get("cidr").replace(";", " ").split() if c]
        if not cidrs:
            bad.append((line_no, "missing cidr", raw))
            continue
        for c in cidrs:
            try:
                r = parse_network(c)
            except ValueError:
                bad.append((line_no, f"bad cidr {c[:80]!r}", raw))
                continue
            rows["org_id"].append(org_id)
            rows["name"].append(get("name") or org_id)
            rows["sector"].append((get("sector") or "unknown").lower())
            rows["country"].append(get("country").upper() or None)
            rows["cidr"].append(r.text if "/" in r.text else f"{r.text}/{r.prefix}")
            rows["prefix_len"].append(r.prefix + (96 if r.version == 4 else 0))
            rows["ip_start4"].append(r.start4)
            rows["ip_end4"].append(r.end4)
            rows["ip_start6"].append(r.start6)
            rows["ip_end6"].append(r.end6)
    if not rows["org_id"]:
        # a header and nothing usable: storing it would silently empty the registry
        first = f" (line {bad[0][0]}: {bad[0][1]})" if bad else ""
        raise InputError(
            f"organization registry has no valid row: {len(bad)} bad row(s){first}",
            path=p,
            hint="one row per CIDR: org_id,name,sector,country,cidr",
        )
    return OrgLoad(pa.table(rows, schema=ORG_SCHEMA), bad)


def store_orgs(ws: Workspace, load: OrgLoad, *, replace: bool = True) -> int:
    """Write the registry into the workspace (replacing it by default)."""
    table = load.table
    if not replace and ws.orgs_path.exists():
        old = read_orgs(ws)
        import pyarrow.compute as pc

        keep = pc.invert(pc.is_in(old.column("org_id"), value_set=table.column("org_id")))
        table = pa.concat_tables([old.filter(keep), table])
    ws.ensure()
    atomic_write_parquet(ws.orgs_path, table)
    return table.num_rows


def read_orgs(ws: Workspace) -> pa.Table:
    if not ws.orgs_path.exists():
        return ORG_SCHEMA.empty_table()
    import pyarrow.parquet as pq

    return pq.read_table(ws.orgs_path).cast(ORG_SCHEMA)


__all__ = ["OrgLoad", "load_orgs_csv", "store_orgs", "read_orgs"]
