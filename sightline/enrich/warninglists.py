"""MISP warninglists compiled into a compact snapshot of shared infrastructure.

The MISP project keeps ``misp-warninglists``: lists of addresses and names that show up in
threat intelligence without being anybody's attack infrastructure (public resolvers, CDN and
cloud ranges, research scanners, popular domains).  sightline keeps the lists that answer
"is this address or name shared by many unrelated parties?", each with a category of its own
(:data:`SELECTION`), and compiles them into a snapshot directory::

    manifest.json    format, source, build time, and per list: id, MISP name, version,
                     category, type, entries kept/skipped (and the lists left out, why)
    ranges.parquet   list, family (4/6), prefix, start4 (uint32) / start6 (binary 16), entry
    names.parquet    list, name (lower case), suffix (the entry covers names under it)

The snapshot bundled in ``sightline/data/warninglists/`` is built from the pinned
``pymispwarninglists`` package (``python -m sightline.enrich.warninglists build``);
``sightline allowlist update [--from DIR]`` builds one into ``<workspace>/warninglists/``
whose lists replace the bundled lists of the same id.  Reading a snapshot needs only
pyarrow: the package is needed to rebuild, not to run.

Lists that cannot be read (bad JSON, no ``list``, an unknown type) are skipped with the
reason; entries that are no address/CIDR/name are counted and skipped.  Nothing here raises
for a bad list file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..net import IPV6_TYPE

FORMAT = "sightline.warninglists/1"
"""The snapshot format; a reader refuses another."""

CATEGORIES = ("resolver", "cdn", "cloud", "saas", "crl", "vpn", "scanner", "popular_domain")
"""What a warninglist says about an address or name (see ``shared_infra.SharedMark``)."""

BOUNDARY = "boundary"
"""Use of a name list that marks nothing: its entries are public suffixes (``co.uk``,
``github.io``) or dynamic-DNS parents (``duckdns.org``) whose sub-names belong to unrelated
parties, so a popular-domain match never climbs past them."""

# id -> category (or BOUNDARY).  The order is the tie order: where two lists hold the very
# same CIDR or name, the earlier list names it (Office 365 before Azure, a provider's own
# list before the aggregated VPN/datacenter list).
SELECTION: dict[str, str] = {
    # addresses
    "public-dns-v4": "resolver",
    "public-dns-v6": "resolver",
    "crl-ip": "crl",
    "censys-scanning": "scanner",
    "shodan-scanning": "scanner",
    "shodan-nt-scanning": "scanner",
    "shadowserver": "scanner",
    "shadowserver-nt-scanning": "scanner",
    "rapid7-nt-scanning": "scanner",
    "research-scanner-nt-scanning": "scanner",
    "internet-census-nt-scanning": "scanner",
    "onyphe-scanner": "scanner",
    "onyphe-nt-scanning": "scanner",
    "modat-scanner": "scanner",
    "modat-nt-scanning": "scanner",
    "alphastrike-scanning": "scanner",
    "alphastrike-research-nt-scanning": "scanner",
    "bufferover-nt-scanning": "scanner",
    "coalition-signals-intelligence-nt-scanning": "scanner",
    "cybergreen-nt-scanning": "scanner",
    "cyberresilience-nt-scanning": "scanner",
    "cypex-nt-scanning": "scanner",
    "f6-nt-scanning": "scanner",
    "intrinsec-nt-scanning": "scanner",
    "ipinfo-nt-scanning": "scanner",
    "ipip-nt-scanning": "scanner",
    "netsecscan-scanning": "scanner",
    "netsecscan-nt-scanning": "scanner",
    "probethenet-nt-scanning": "scanner",
    "shadowforce-scanning": "scanner",
    "shadowforce-nt-scanning": "scanner",
    "skipa-nt-scanning": "scanner",
    "stretchoid-nt-scanning": "scanner",
    "palo-alto-networks-cortex-xpanse": "scanner",
    "tenable-cloud-ipv4": "scanner",
    "tenable-cloud-ipv6": "scanner",
    "check-host-net": "scanner",
    "googlebot": "scanner",
    "openai-gptbot": "scanner",
    "microsoft-office365-ip": "saas",
    "microsoft-office365-cn": "saas",
    "google-gmail-sending-ips": "saas",
    "smtp-sending-ips": "saas",
    "smtp-receiving-ips": "saas",
    "zscaler": "saas",
    "umbrella-blockpage-v4": "saas",
    "umbrella-blockpage-v6": "saas",
    "telegram-ips": "saas",
    "apple": "saas",
    "wikimedia": "saas",
    "ovh-cluster": "saas",  # OVH shared web hosting: many unrelated sites on one address
    "parking-domain": "saas",  # domain parking: every lapsed domain of a parker points here
    "cloudflare": "cdn",
    "akamai": "cdn",
    "fastly": "cdn",
    "stackpath": "cdn",
    "amazon-aws": "cloud",
    "google-gcp": "cloud",
    "microsoft-azure": "cloud",
    "microsoft-azure-china": "cloud",
    "microsoft-azure-germany": "cloud",
    "microsoft-azure-us-gov": "cloud",
    "github": "cloud",  # mostly the Azure ranges of GitHub Actions runners: rentable compute
    "vpn-ipv4": "vpn",
    "vpn-ipv6": "vpn",
    # names
    "public-dns-hostname": "resolver",
    "crl-hostname": "crl",
    "google": "saas",
    "microsoft": "saas",
    "microsoft-office365": "saas",
    "microsoft-win10-connection-endpoints": "saas",
    "url-shortener": "saas",
    "whats-my-ip": "saas",
    "findip-host": "saas",
    "public-ipfs-gateways": "saas",
    "captive-portals": "saas",
    "umbrella-blockpage-hostname": "saas",
    "tranco10k": "popular_domain",
    "cisco_top20k": "popular_domain",
    "majestic_million": "popular_domain",
    "moz-top500": "popular_domain",
    "alexa": "popular_domain",
    "second-level-tlds": BOUNDARY,
    "tlds": BOUNDARY,
    "dynamic-dns": BOUNDARY,
}

AGGREGATE = frozenset({"vpn-ipv4", "vpn-ipv6", "github"})
"""Lists that gather other operators' ranges (VPN/datacenter aggregates; GitHub's meta is
mostly the Azure ranges of its Actions runners).  They mark an address only where no other
list holds it: often finer-grained than the provider's own list, a most-specific rule would
otherwise let them rename Akamai or Office 365 addresses."""

_HASHES = "file hashes or certificate fingerprints, not addresses or names"
_SPECIAL = "special-use address space (private, documentation, multicast): not shared infrastructure"
LEFT_OUT: dict[str, str] = {
    "tranco": "1,000,000 names (21 MB as JSON, ~5 MB compressed) and a long tail in which malicious "
    "domains rank too; tranco10k and cisco_top20k stand in (add it to a workspace with "
    "`sightline allowlist update --from DIR --category tranco=popular_domain`)",
    "google-chrome-crux-1million": "1,000,000 names (25 MB as JSON); same reason as tranco",
    "cisco_top1000": "contained in cisco_top20k",
    "cisco_top5k": "contained in cisco_top20k",
    "cisco_top10k": "contained in cisco_top20k",
    "sinkholes": "a sinkhole answers for seized C2 domains: a host contacting one is likely infected, "
    "so a sinkhole must not weaken evidence (a category of its own, for assess to decide)",
    "microsoft-attack-simulator": "phishing-simulation service (addresses and names mixed, substring matching)",
    "lots-project": "popular sites that actors abuse for C2 and exfiltration: a warning, not a reason to trust",
    "security-provider-blogpost": "blog domains of security vendors (reports, not infrastructure)",
    "automated-malware-analysis": "sandbox domains (substring matching)",
    "parking-domain-ns": "name servers of parking services (NS records, not contacted addresses)",
    "university_domains": "universities are victims in this campaign model, not shared infrastructure",
    "bank-website": "bank domains: not shared infrastructure",
    **{
        k: _HASHES
        for k in (
            "common-ioc-false-positive",
            "eicar.com",
            "empty-hashes",
            "nioc-filehash",
            "ti-falsepositives",
            "mozilla-CA",
            "mozilla-IntermediateCA",
            "windows-binary-hashes",
        )
    },
    **{k: _SPECIAL for k in ("rfc1918", "rfc3849", "rfc5735", "rfc6598", "rfc6761", "multicast", "ipv6-linklocal")},
}
DEFAULT_LEFT_OUT = "not about infrastructure shared by unrelated parties"

RANGES_SCHEMA = pa.schema(
    [
        pa.field("list", pa.string()),
        pa.field("family", pa.int8()),
        pa.field("prefix", pa.uint8()),
        pa.field("start4", pa.uint32()),
        pa.field("start6", IPV6_TYPE),
        pa.field("entry", pa.string()),
    ]
)
NAMES_SCHEMA = pa.schema([pa.field("list", pa.string()), pa.field("name", pa.string()), pa.field("suffix", pa.bool_())])

_NAME_TYPES = ("string", "hostname", "substring")
MAX_REASONS = 5
"""Skip reasons kept per list in the manifest (the count is always complete)."""


@dataclass
class Snapshot:
    """A compiled set of lists: the manifest and the two tables."""

    manifest: dict[str, Any]
    ranges: pa.Table
    names: pa.Table
    problems: list[str] = field(default_factory=list)

    @property
    def lists(self) -> dict[str, dict[str, Any]]:
        return {m["id"]: m for m in self.manifest.get("lists", [])}


def empty_snapshot() -> Snapshot:
    return Snapshot(
        {"format": FORMAT, "lists": [], "left_out": []}, RANGES_SCHEMA.empty_table(), NAMES_SCHEMA.empty_table()
    )


# ---- reading MISP list directories --------------------------------------------------------


def package_lists_dir() -> tuple[Path, str]:
    """The lists directory of the installed ``pymispwarninglists`` and its version."""
    try:
        from importlib.metadata import version

        import pymispwarninglists  # type: ignore[import-untyped]
    except ImportError as e:
        raise InputError(
            "pymispwarninglists is not installed",
            hint="pip install 'sightline[dev]' (it pins it), or pass --from DIR with a checkout "
            "of MISP/misp-warninglists",
        ) from e
    root = Path(pymispwarninglists.__file__).parent / "data" / "misp-warninglists" / "lists"
    if not root.is_dir():
        raise InputError(
            "the installed pymispwarninglists ships no lists",
            path=root,
            hint="reinstall it, or pass --from DIR with a checkout of MISP/misp-warninglists",
        )
    return root, version("pymispwarninglists")


def lists_dir_of(path: Path) -> Path:
    """``DIR/lists`` for a checkout of misp-warninglists, else ``DIR`` itself."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(
            "not a directory",
            path=path,
            hint="pass a checkout of MISP/misp-warninglists or a directory of <id>/list.json",
        )
    return path / "lists" if (path / "lists").is_dir() else path


def _entries_of(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A list.json as a dict, or the reason it cannot be used."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as e:
        return None, f"cannot read: {e.strerror or e}"
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"not valid JSON ({e})"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    if not isinstance(data.get("list"), list):
        return None, "has no 'list' array"
    if not isinstance(data.get("name", ""), str):
        return None, "'name' is not text"
    return data, None


def _version(v: Any) -> str:
    return str(v) if isinstance(v, (int, str)) and not isinstance(v, bool) and str(v).strip() else "0"


def _parse_cidr(text: str) -> tuple[int, int, int | None, bytes | None]:
    net = ipaddress.ip_network(text.strip(), strict=False)
    if net.version == 6 and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
        net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}", strict=False)
    if net.version == 4:
        return 4, net.prefixlen, int(net.network_address), None
    return 6, net.prefixlen, None, net.network_address.packed


def _normal_name(text: str) -> tuple[str, bool] | None:
    """(name, leading-dot suffix) for a list entry, or None when it is no DNS name."""
    t = text.strip().lower().rstrip(".")
    suffix = False
    if t.startswith("*."):
        t, suffix = t[2:], True
    elif t.startswith("."):
        t, suffix = t[1:], True
    if not t or len(t) > 253 or any(c in t for c in "/:@ \t*?[]\\") or ".." in t:
        return None
    return t, suffix


def compile_lists(
    lists_dir: Path,
    *,
    source: Mapping[str, Any],
    categories: Mapping[str, str] | None = None,
    only: Iterable[str] | None = None,
) -> Snapshot:
    """Compile the selected lists under ``lists_dir`` (``<id>/list.json``) into a snapshot.

    ``categories`` adds lists (or re-categorizes them) beyond :data:`SELECTION`: ``{id: category}``;
    ``only`` restricts the build to these list ids.  Damaged lists are skipped with the reason
    (in ``Snapshot.problems`` and the manifest's ``skipped_lists``).
    """
    chosen = dict(SELECTION)
    for k, v in (categories or {}).items():
        if v not in CATEGORIES and v != BOUNDARY:
            raise InputError(
                f"unknown category {v!r} for list {k!r}", hint=f"use one of {', '.join(CATEGORIES)} or {BOUNDARY}"
            )
        chosen.pop(k, None)
        chosen = {k: v, **chosen} if v != BOUNDARY else {**chosen, k: v}
    wanted = set(only) if only is not None else None
    dirs = sorted(p for p in Path(lists_dir).iterdir() if p.is_dir()) if Path(lists_dir).is_dir() else []
    order = {k: i for i, k in enumerate(chosen)}
    lists, left_out, skipped_lists, problems = [], [], [], []
    r_cols: dict[str, list[Any]] = {k: [] for k in RANGES_SCHEMA.names}
    n_cols: dict[str, list[Any]] = {k: [] for k in NAMES_SCHEMA.names}
    for d in sorted(dirs, key=lambda p: (order.get(p.name, len(order)), p.name)):
        lid = d.name
        if wanted is not None and lid not in wanted:
            continue
        if lid not in chosen:
            left_out.append({"id": lid, "reason": LEFT_OUT.get(lid, DEFAULT_LEFT_OUT)})
            continue
        if not (d / "list.json").is_file():
            continue
        data, why = _entries_of(d / "list.json")
        if data is None:
            reason = f"list {lid} skipped: {d / 'list.json'} {why}"
            skipped_lists.append({"id": lid, "reason": why})
            problems.append(reason)
            continue
        typ = str(data.get("type") or "string")
        category = chosen[lid]
        kept, bad, reasons = 0, 0, []
        if typ == "cidr":
            for e in data["list"]:
                try:
                    fam, pfx, s4, s6 = _parse_cidr(str(e))
                except ValueError:
                    bad += 1
                    if len(reasons) < MAX_REASONS:
                        reasons.append(f"not an address or CIDR: {str(e)[:80]!r}")
                    continue
                r_cols["list"].append(lid)
                r_cols["family"].append(fam)
                r_cols["prefix"].append(pfx)
                r_cols["start4"].append(s4)
                r_cols["start6"].append(s6)
                r_cols["entry"].append(str(e).strip())
                kept += 1
        elif typ in _NAME_TYPES:
            for e in data["list"]:
                nm = _normal_name(str(e)) if isinstance(e, str) else None
                if nm is None:
                    bad += 1
                    if len(reasons) < MAX_REASONS:
                        reasons.append(f"not a DNS name: {str(e)[:80]!r}")
                    continue
                n_cols["list"].append(lid)
                n_cols["name"].append(nm[0])
                # MISP 'hostname' lists match the name and every name under it; 'string' lists
                # match exactly, except entries written with a leading dot
                n_cols["suffix"].append(nm[1] or typ != "string")
                kept += 1
        else:
            why = f"type {typ!r} is not cidr, hostname, string or substring"
            skipped_lists.append({"id": lid, "reason": why})
            problems.append(f"list {lid} skipped: {why}")
            continue
        if bad:
            problems.append(f"list {lid}: {bad} entr{'y' if bad == 1 else 'ies'} skipped ({reasons[0]})")
        lists.append(
            {
                "id": lid,
                "name": str(data.get("name") or lid),
                "description": str(data.get("description") or ""),
                "version": _version(data.get("version")),
                "type": typ,
                "category": category,
                "entries": kept,
                "skipped": bad,
                "skip_reasons": reasons,
            }
        )
    manifest = {
        "format": FORMAT,
        "built_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "source": dict(source),
        "lists": lists,
        "skipped_lists": skipped_lists,
        "left_out": sorted(left_out, key=lambda x: x["id"]),
    }
    return Snapshot(manifest, pa.table(r_cols, schema=RANGES_SCHEMA), pa.table(n_cols, schema=NAMES_SCHEMA), problems)


def build_from(
    directory: Path | None = None, *, categories: Mapping[str, str] | None = None, only: Iterable[str] | None = None
) -> Snapshot:
    """Compile from a checkout / lists directory, or (None) from the installed package."""
    if directory is None:
        root, ver = package_lists_dir()
        return compile_lists(
            root, source={"kind": "pymispwarninglists", "version": ver}, categories=categories, only=only
        )
    root = lists_dir_of(Path(directory))
    return compile_lists(
        root, source={"kind": "directory", "path": str(Path(directory).resolve())}, categories=categories, only=only
    )


# ---- snapshot files -----------------------------------------------------------------------


def write_snapshot(snap: Snapshot, dest: Path) -> None:
    """Write ``snap`` to directory ``dest``, replacing what was there as a whole."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".warninglists-", dir=dest.parent))
    try:
        tmp.chmod(0o755)
        (tmp / "manifest.json").write_text(json.dumps(snap.manifest, indent=1, ensure_ascii=False) + "\n", "utf-8")
        kw: dict[str, Any] = {"compression": "zstd", "compression_level": 19, "use_dictionary": ["list"]}
        pq.write_table(
            snap.ranges.sort_by(
                [
                    ("list", "ascending"),
                    ("family", "ascending"),
                    ("prefix", "ascending"),
                    ("start4", "ascending"),
                    ("start6", "ascending"),
                ]
            ),
            tmp / "ranges.parquet",
            **kw,
        )
        pq.write_table(snap.names.sort_by([("list", "ascending"), ("name", "ascending")]), tmp / "names.parquet", **kw)
        old = dest.with_name(dest.name + ".old")
        if dest.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_snapshot(path: Any) -> Snapshot:
    """Read a snapshot directory (a Path or an importlib resource).  A missing or damaged
    snapshot reads as empty, with the reason in ``problems``."""
    try:
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(
                f"format is {manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {FORMAT!r}"
            )
        with (path / "ranges.parquet").open("rb") as fh:
            ranges = pq.read_table(fh).cast(RANGES_SCHEMA)
        with (path / "names.parquet").open("rb") as fh:
            names = pq.read_table(fh).cast(NAMES_SCHEMA)
    except FileNotFoundError:
        return empty_snapshot()
    except (OSError, ValueError, TypeError, KeyError, pa.ArrowException) as e:
        snap = empty_snapshot()
        snap.problems.append(
            f"warninglist snapshot {path} unusable ({e}); rebuild it with `sightline allowlist update`"
        )
        return snap
    return Snapshot(manifest, ranges, names)


def bundled_path() -> Any:
    return resources.files("sightline") / "data" / "warninglists"


def workspace_path(ws: Any) -> Path:
    return Path(ws.root) / "warninglists"


def _age_days(version: str, now: dt.datetime) -> int | None:
    v = version.strip()
    for fmt in ("%Y%m%d", "%y%m%d%H"):
        try:
            d = dt.datetime.strptime(v, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        if 2000 <= d.year <= now.year:
            return max(0, (now - d).days)
    return None


def effective_snapshot(ws: Any | None = None) -> Snapshot:
    """The bundled snapshot with the workspace's lists in place of those of the same id."""
    snap = read_snapshot(bundled_path())
    for m in snap.manifest.get("lists", []):
        m["origin"] = "bundled"
    if ws is None:
        return snap
    user = read_snapshot(workspace_path(ws))
    if not user.manifest.get("lists"):
        snap.problems += user.problems
        return snap
    mine = {m["id"] for m in user.manifest.get("lists", [])}
    for m in user.manifest.get("lists", []):
        m["origin"] = "workspace"
    keep = [m for m in snap.manifest.get("lists", []) if m["id"] not in mine]
    merged = dict(
        snap.manifest,
        lists=user.manifest.get("lists", []) + keep,
        workspace={"built_at": user.manifest.get("built_at"), "source": user.manifest.get("source")},
    )
    ranges = pa.concat_tables([user.ranges, _drop_lists(snap.ranges, mine)])
    names = pa.concat_tables([user.names, _drop_lists(snap.names, mine)])
    return Snapshot(merged, ranges, names, snap.problems + user.problems)


def _drop_lists(t: pa.Table, ids: set[str]) -> pa.Table:
    if not ids or not t.num_rows:
        return t
    import pyarrow.compute as pc

    return t.filter(pc.invert(pc.is_in(t.column("list"), pa.array(sorted(ids), pa.string()))))


def status(ws: Any | None = None, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """What the effective snapshot holds: per list and in total, with versions and ages."""
    now = now or dt.datetime.now(dt.UTC)
    snap = effective_snapshot(ws)
    lists = []
    for m in snap.manifest.get("lists", []):
        lists.append(
            {k: m.get(k) for k in ("id", "name", "category", "version", "type", "entries", "skipped", "origin")}
            | {"age_days": _age_days(str(m.get("version") or ""), now)}
        )
    ages = [x["age_days"] for x in lists if x["age_days"] is not None and x["category"] != BOUNDARY]
    bundled = (
        json.loads((bundled_path() / "manifest.json").read_text("utf-8"))
        if (bundled_path() / "manifest.json").is_file()
        else {}
    )

    def built(s: str | None) -> dict[str, Any]:
        try:
            t = dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
        except ValueError:
            return {"built_at": s, "age_days": None}
        return {"built_at": s, "age_days": max(0, (now - t).days)}

    out = {
        "lists": lists,
        "totals": {
            "lists": sum(1 for x in lists if x["category"] != BOUNDARY),
            "boundary_lists": sum(1 for x in lists if x["category"] == BOUNDARY),
            "ranges": snap.ranges.num_rows,
            "names": snap.names.num_rows,
            "oldest_list_days": max(ages) if ages else None,
            "newest_list_days": min(ages) if ages else None,
        },
        "bundled": {"source": bundled.get("source"), **built(bundled.get("built_at"))},
        "workspace": (
            {"source": snap.manifest["workspace"]["source"], **built(snap.manifest["workspace"]["built_at"])}
            if "workspace" in snap.manifest
            else None
        ),
        "problems": snap.problems,
    }
    return out


def update_workspace(
    ws: Any,
    directory: Path | None = None,
    *,
    categories: Mapping[str, str] | None = None,
    only: Iterable[str] | None = None,
) -> Snapshot:
    """``sightline allowlist update``: compile into ``<workspace>/warninglists/``.

    Raises :class:`InputError` when nothing usable was found (the workspace copy is then
    left as it was)."""
    snap = build_from(directory, categories=categories, only=only)
    if not snap.manifest["lists"]:
        where = directory if directory is not None else "the installed pymispwarninglists"
        raise InputError(
            f"no usable warninglist in {where}" + (f" ({'; '.join(snap.problems[:3])})" if snap.problems else ""),
            hint="pass a checkout of MISP/misp-warninglists or a directory of <id>/list.json files; "
            "lists sightline does not know need --category ID=CATEGORY",
        )
    write_snapshot(snap, workspace_path(ws))
    return snap


def summary_lines(snap: Snapshot) -> list[str]:
    kept = [m for m in snap.manifest["lists"] if m["category"] != BOUNDARY]
    return [
        f"{len(kept)} lists ({len(snap.manifest['lists']) - len(kept)} suffix-boundary lists), "
        f"{snap.ranges.num_rows:,} ranges, {snap.names.num_rows:,} names; "
        f"{len(snap.manifest['left_out'])} lists left out, {len(snap.manifest['skipped_lists'])} skipped as damaged",
        *snap.problems,
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m sightline.enrich.warninglists build [--from DIR] [--out DIR]``."""
    ap = argparse.ArgumentParser(
        prog="python -m sightline.enrich.warninglists", description="Rebuild the bundled warninglist snapshot."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile MISP warninglists into a snapshot")
    b.add_argument(
        "--from",
        dest="src",
        type=Path,
        default=None,
        help="a checkout of MISP/misp-warninglists (default: the installed pymispwarninglists)",
    )
    b.add_argument("--out", type=Path, default=None, help="snapshot directory (default: the bundled one)")
    args = ap.parse_args(argv)
    out = args.out or Path(__file__).resolve().parent.parent / "data" / "warninglists"
    try:
        snap = build_from(args.src)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    write_snapshot(snap, out)
    size = sum(p.stat().st_size for p in out.iterdir())
    for line in summary_lines(snap):
        print(line)
    print(f"wrote {out} ({size / 1e6:.2f} MB)")
    return 0


__all__ = [
    "FORMAT",
    "CATEGORIES",
    "BOUNDARY",
    "AGGREGATE",
    "SELECTION",
    "LEFT_OUT",
    "RANGES_SCHEMA",
    "NAMES_SCHEMA",
    "Snapshot",
    "compile_lists",
    "build_from",
    "write_snapshot",
    "read_snapshot",
    "effective_snapshot",
    "status",
    "update_workspace",
    "summary_lines",
    "package_lists_dir",
    "lists_dir_of",
]

if __name__ == "__main__":
    sys.exit(main())
