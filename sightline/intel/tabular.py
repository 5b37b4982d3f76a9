"""CSV/TSV indicator tables and plain lists.

- CSV (design.md): ``indicator,type,actor,first_seen,last_seen,confidence,tlp``; header names
  are matched liberally (``ioc``/``value``, ``First Seen``/``valid_from``, ...), the delimiter
  is a comma or a tab, and a file without a header is read in that column order.  Vendor
  tables such as Black Lotus Labs' ``IOC / Type / First Seen / Last Seen / Category`` TSV
  read the same way (extra columns become the description).
- Plain lists: one IP, CIDR, domain, URL or hash per line; ``#`` starts a comment.

Prose around a table (a report's YARA rules or notes after the indicator rows) is reported
as one skip per block of lines, not one per line.
"""

from __future__ import annotations

import csv
import io
import re

from .model import RowBuilder, canonical_type, guess_kind

_COLS: dict[str, tuple[str, ...]] = {
    "indicator": (
        "indicator",
        "ioc",
        "value",
        "observable",
        "indicator_value",
        "ioc_value",
        "ip",
        "address",
        "domain",
        "artifact",
    ),
    "type": ("type", "indicator_type", "ioc_type", "kind", "observable_type"),
    "actor": ("actor", "threat_actor", "group", "intrusion_set", "attribution"),
    "first_seen": ("first_seen", "firstseen", "valid_from", "first", "start"),
    "last_seen": ("last_seen", "lastseen", "valid_until", "last", "end"),
    "confidence": ("confidence", "score"),
    "tlp": ("tlp", "marking", "tlp_level"),
    "port": ("port", "dst_port"),
    "description": ("description", "category", "comment", "comments", "notes", "tags", "context"),
}
DESIGN_ORDER = ("indicator", "type", "actor", "first_seen", "last_seen", "confidence", "tlp")


def _key(h: str) -> str:
    return "_".join(h.strip().strip("\ufeff").lower().replace("-", " ").split())


def _map_header(cells: list[str]) -> dict[str, int] | None:
    """Column role -> index, or None when the line is not a header."""
    roles: dict[str, int] = {}
    for i, c in enumerate(cells):
        k = _key(c)
        for role, names in _COLS.items():
            if k in names and role not in roles:
                roles[role] = i
                break
    return roles if "indicator" in roles else None


def sniff_table(text: str) -> bool:
    """True when the first data line looks like a delimited indicator table (vs a plain list)."""
    for line in text.splitlines()[:50]:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        delim = "\t" if "\t" in s else ","
        cells = next(csv.reader([s], delimiter=delim))
        return len(cells) > 1 and (_map_header(cells) is not None or guess_kind(cells[0]) is not None)
    return False


def read_table(text: str, b: RowBuilder) -> None:
    """Read a delimited indicator table into ``b``."""
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")), None)
    if first is None:
        return
    delim = "\t" if "\t" in lines[first] else ","
    head = next(csv.reader([lines[first]], delimiter=delim))
    roles = _map_header(head)
    start = first + 1
    if roles is None:
        roles = {r: i for i, r in enumerate(DESIGN_ORDER)}
        start = first
    ncols = max(roles.values()) + 1
    prose: list[int] = []

    def flush_prose() -> None:
        if prose:
            a, z = prose[0], prose[-1]
            where = f"line {a}" if a == z else f"lines {a}-{z}"
            b.report.skip(
                where, f"free text: {len(prose)} line(s) that are not indicator rows", lines[a - 1].strip()[:80]
            )
            prose.clear()

    extra_idx = [i for i in range(len(head)) if i not in roles.values()] if start > first else []
    for lineno, cells in enumerate(csv.reader(lines[start:], delimiter=delim), start=start + 1):
        raw = lines[lineno - 1].strip() if lineno - 1 < len(lines) else ""
        if not raw or raw.startswith("#"):
            continue
        if len(cells) == 1 and ncols > 1 and guess_kind(cells[0]) is None:
            prose.append(lineno)
            continue
        flush_prose()
        b.report.read += 1

        def cell(role: str, cells: list[str] = cells) -> str | None:
            i = roles.get(role)
            if i is None or i >= len(cells):
                return None
            v = cells[i].strip()
            return v or None

        type_text = cell("type")
        kind = canonical_type(type_text)
        value = cell("indicator") or ""
        if type_text and kind is None:
            b.report.skip(f"line {lineno}", f"unsupported type: {type_text!r}", value)
            continue
        if kind == "ip" and guess_kind(value) == "ip_port":
            kind = "ip_port"
        port_text = cell("port")
        port = None
        if port_text:
            if not port_text.isdigit():
                b.report.skip(f"line {lineno}", f"bad value: port {port_text!r}", value)
                continue
            port = int(port_text)
        desc_parts = [cell("description")] + [
            cells[i].strip() for i in extra_idx if i < len(cells) and cells[i].strip()
        ]
        desc = "; ".join(dict.fromkeys(p for p in desc_parts if p)) or None
        b.add(
            kind,
            value,
            position=f"line {lineno}",
            port=port,
            actor=cell("actor"),
            valid_from=cell("first_seen"),
            valid_until=cell("last_seen"),
            confidence=cell("confidence"),
            tlp=cell("tlp"),
            description=desc,
        )
    flush_prose()


def read_list(text: str, b: RowBuilder) -> None:
    """Read a plain list (one indicator per line, ``#`` comments) into ``b``."""
    for lineno, line in enumerate(io.StringIO(text), start=1):
        # '#' starts a comment at line start or after a blank; inside a URL it is a fragment
        s = "" if line.lstrip().startswith("#") else re.sub(r"\s#.*$", "", line).strip()
        if not s:
            continue
        b.report.read += 1
        token, _, rest = s.partition(" ")
        b.add(None, token, position=f"line {lineno}", description=rest.strip() or None)


__all__ = ["read_table", "read_list", "sniff_table", "DESIGN_ORDER"]
