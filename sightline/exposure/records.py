"""Build the CVE version-range table from the records the field maintains.

CISA's KEV catalog names a vendor and product but no versions.  The versions are in two
public-domain record sets:

* **CVE JSON 5 records** (CVEProject/cvelistV5; the CISA ADP enrichment of
  cisagov/vulnrichment is the same format): ``containers.cna.affected[]`` and
  ``containers.adp[].affected[]`` with ``versions[]`` of ``version`` + ``status`` and
  optionally ``lessThan`` / ``lessThanOrEqual``; ADP entries also carry ``cpes``.
* **NVD CVE configurations** (NVD API / CVE 2.0 feeds, e.g. fkie-cad/nvd-json-data-feeds;
  the older 1.1 yearly feeds work too): CPE match strings with
  ``versionStart/End Including/Excluding``.

:func:`build_ranges` reads any mix of them -- a full local mirror (only files named after a
wanted CVE are opened), yearly feed files (``.json`` / ``.json.gz``), or single records -- and
writes one compact entry per KEV CVE: ``products`` (canonical ``vendor:product`` id ->
ranges in the vocabulary of :mod:`.versions`), ``range_source`` per product
(``cve_record`` / ``nvd_configuration`` / ``override``), ``all_versions`` (products a record
names without any version bound: every version is *possibly* affected) and ``source``.
CVEs that get nothing are listed with the reason.

A product's ranges come from the CVE record when the record bounds them, else from NVD;
hand-written overrides (``data/exposure/cve_range_overrides.json``, each with its reason)
replace a product's ranges for records known to be wrong.

Command line (what regenerates the bundled table)::

    python -m sightline.exposure.records --cve-records DIR --nvd DIR [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError
from .cpe import canonical_product, parse_cpe, product_for_text
from .versions import version_key

__all__ = [
    "RANGE_SOURCES",
    "RangeBuild",
    "build_ranges",
    "ranges_from_cve_record",
    "ranges_from_nvd",
    "iter_records",
    "load_overrides",
    "main",
]

RANGE_SOURCES = ("cve_record", "nvd_configuration", "override")

_CVE_FILE = re.compile(r"^(CVE-\d{4}-\d{4,19})(?:\.json)?$", re.I)
_NOT_A_VERSION = {"", "*", "-", "n/a", "na", "unspecified", "unknown", "all", "all versions", "various", "multiple"}
_NO_LOWER = {"0", "*", "", "-", "0.0", "n/a", "unspecified"}
MAX_RECORD_BYTES = 64 * 1024 * 1024


Range = dict[str, str]


@dataclass
class _Found:
    """What one source says about one CVE: product -> ranges, and unbounded products."""

    bounded: dict[str, list[Range]] = field(default_factory=dict)
    unbounded: set[str] = field(default_factory=set)
    label: str = ""
    no_versions: bool = False  # the record names products but says "n/a" for every version
    hosted: bool = False  # a hosted (cloud) service only: nothing to scan

    def add(self, pid: str, rng: Range | None) -> None:
        if rng is None:
            self.unbounded.add(pid)
            return
        lst = self.bounded.setdefault(pid, [])
        if rng not in lst:
            lst.append(rng)


_VERSION_TOKEN = re.compile(r"^[vV]?\d[\w.+~()\-]*$")


def _is_version(text: Any) -> bool:
    """One version token (``7.2.0``, ``10.2.9-h1``, ``9.1R18``, ``9.16(4)``): free text such as
    "FortiOS 6.0.0 to 6.0.4, FortiProxy 2.0.0" is not one, and is not read as one."""
    return isinstance(text, str) and bool(_VERSION_TOKEN.match(text.strip())) and version_key(text) is not None


_TEXT_FORMS = (  # the few free-text forms a record's "version" field takes for one product
    (re.compile(r"^(?:<=|\u2264)\s*(\S+)$"), "last_affected"),
    (re.compile(r"^<\s*(\S+)$"), "fixed"),
    (re.compile(r"^(?:before|prior\s+to)\s+(\S+)$", re.I), "fixed"),
    (re.compile(r"^(\S+)\s+and\s+(?:older|earlier|prior|below)(?:\s+versions?)?$", re.I), "last_affected"),
)
_TEXT_SPAN = re.compile(r"^(\S+)\s+(?:to|through)\s+(\S+)$", re.I)


def _text_range(text: str) -> Range | None:
    """A range from a version field written as text (``7.0.1-5035 and older``, ``< 3.2``,
    ``4.60 through 5.35``), or None when the text is anything else."""
    t = text.strip().rstrip(".")
    for rx, key in _TEXT_FORMS:
        m = rx.match(t)
        if m and _is_version(m.group(1)):
            return {key: m.group(1)}
    m = _TEXT_SPAN.match(t)
    if m and _is_version(m.group(1)) and _is_version(m.group(2)):
        return {"introduced": m.group(1), "last_affected": m.group(2)}
    return None


def _clean(text: Any) -> str:
    return str(text).strip()


# --- CVE JSON 5 --------------------------------------------------------------------------

_SLUG = re.compile(r"[^a-z0-9]+")


def _slug(text: str) -> str:
    return _SLUG.sub("_", text.lower()).strip("_")


def _cve5_product_ids(aff: Mapping[str, Any]) -> list[str]:
    """Canonical product ids of one ``affected`` entry: its CPEs, else a product-name rule on
    ``vendor product``, else a slug of the names (kept, though a scan rarely names it so)."""
    ids: list[str] = []
    for c in aff.get("cpes") or []:
        parsed = parse_cpe(str(c)) if isinstance(c, str) else None
        if parsed is not None:
            pid = canonical_product(parsed[1], parsed[2])
            if pid not in ids:
                ids.append(pid)
    if ids:
        return ids
    vendor, product = _clean(aff.get("vendor") or ""), _clean(aff.get("product") or "")
    if not product or product.lower() in _NOT_A_VERSION:
        return []
    pid = product_for_text(f"{vendor} {product}")
    if pid is None:
        pid = canonical_product(_slug(vendor) or "unknown", _slug(product))
    return [pid]


_WILDCARD = re.compile(r"^(\d+(?:\.\d+)*)\.[*x]$", re.I)


def _next_line(prefix: str) -> str:
    parts = prefix.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return ".".join(parts)


def _upper(lower: str | None, bound: str, version_type: str) -> str:
    """A ``lessThan`` that is a build number of the ``version`` line (Citrix writes version
    ``13.1``, lessThan ``49.15``, versionType ``patch`` for 13.1-49.15) becomes the full
    version."""
    if lower:
        lk, bk = version_key(lower), version_key(bound)
        if lk is not None and bk is not None and (bk < lk or (version_type == "patch" and bk[0] != lk[0])):
            return f"{lower}-{bound}"
    return bound


def _cve5_range(v: Mapping[str, Any], pending: list[str | None]) -> tuple[bool, Range | None]:
    """(usable, range) of one ``versions[]`` item with status affected; range None = unbounded.

    ``pending`` carries a lower bound across items: records converted from the old JSON 4
    format split "from 7.13.0 before 7.13.7" into ``{version 7.13.0, lessThan unspecified}``
    and ``{version unspecified, lessThan 7.13.7}``.
    """
    ver = _clean(v.get("version") or "")
    m = re.match(r"^next\s+of\s+(\S+)$", ver, re.I)  # JSON 4 ">" converted: read as inclusive
    if m:
        ver = m.group(1)
    lt, le = v.get("lessThan"), v.get("lessThanOrEqual")
    lower = ver if ver.lower() not in _NO_LOWER and _is_version(ver) else None
    for key, bound in (("fixed", lt), ("last_affected", le)):
        if bound is None:
            continue
        b = _clean(bound)
        if _is_version(b):
            if lower is None and pending and pending[0]:
                lower = pending[0]
            pending[:] = [None]
            b = _upper(lower, b, str(v.get("versionType") or ""))
            if lower is not None and key == "fixed" and version_key(lower) == version_key(b):
                lower = None  # "version 114.0.5735.110, lessThan 114.0.5735.110": the CNA means "< bound"
            return True, ({"introduced": lower, key: b} if lower else {key: b})
        if b in ("*", "") and lower:
            return True, {"introduced": lower}
        if b.lower() in _NOT_A_VERSION and lower:  # first half of a split JSON 4 pair
            pending[:] = [lower]
            return True, {}
        return True, None
    if _is_version(ver):
        return True, {"introduced": ver, "last_affected": ver}
    m = _WILDCARD.match(ver)
    if m:
        return True, {"introduced": m.group(1), "fixed": _next_line(m.group(1))}
    rng = _text_range(ver)
    if rng is not None:
        return True, rng
    return False, None  # "n/a", "unspecified", "All", or prose naming several products


def ranges_from_cve_record(rec: Mapping[str, Any]) -> _Found:
    """Ranges of one CVE JSON 5 record (CNA container and every ADP container)."""
    found = _Found()
    cont = rec.get("containers") or {}
    parts: list[tuple[str, Mapping[str, Any]]] = []
    cna = cont.get("cna")
    if isinstance(cna, dict):
        parts.append(("cna", cna))
    for adp in cont.get("adp") or []:
        if isinstance(adp, dict):
            parts.append(("adp", adp))
    names = []
    named_any = False
    all_na = True
    for kind, c in parts:
        short = (c.get("providerMetadata") or {}).get("shortName") or kind
        got = False
        for aff in c.get("affected") or []:
            if not isinstance(aff, dict):
                continue
            pids = _cve5_product_ids(aff)
            if not pids:
                continue
            named_any = True
            usable_any = False
            pending: list[str | None] = [None]
            for v in aff.get("versions") or []:
                if not isinstance(v, dict) or str(v.get("status", "")).lower() != "affected":
                    continue
                usable, rng = _cve5_range(v, pending)
                if not usable:
                    continue
                usable_any = True
                if rng == {}:
                    continue  # a lower bound waiting for its upper bound
                for pid in pids:
                    found.add(pid, rng)
                got = True
            if pending[0]:  # a lower bound whose upper bound never came: open-ended
                for pid in pids:
                    found.add(pid, {"introduced": pending[0]})
            if not usable_any and str(aff.get("defaultStatus", "")).lower() == "affected":
                for pid in pids:
                    found.add(pid, None)
                got = True
            if usable_any:
                all_na = False
        if got:
            names.append("CNA " + short if kind == "cna" else "ADP " + short)
    found.no_versions = named_any and all_na and not found.bounded
    found.label = "CVE record (" + ", ".join(names) + ")" if names else ""
    return found


# --- NVD configurations ------------------------------------------------------------------


def _nvd_matches(nodes: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    for node in nodes or ():
        if not isinstance(node, dict) or node.get("negate"):
            continue
        for m in node.get("cpeMatch") or node.get("cpe_match") or ():
            if isinstance(m, dict) and m.get("vulnerable"):
                yield m
        yield from _nvd_matches(node.get("children") or ())


def _nvd_range(m: Mapping[str, Any], version: str | None, update: str | None) -> Range | None:
    rng: Range = {}
    si, se = m.get("versionStartIncluding"), m.get("versionStartExcluding")
    ei, ee = m.get("versionEndIncluding"), m.get("versionEndExcluding")
    if si and _is_version(si):
        rng["introduced"] = _clean(si)
    elif se and _is_version(se):
        rng["introduced_after"] = _clean(se)
    if ee and _is_version(ee):
        rng["fixed"] = _clean(ee)
    elif ei and _is_version(ei):
        rng["last_affected"] = _clean(ei)
    if rng:
        return (
            rng
            if ("fixed" in rng or "last_affected" in rng or "introduced" in rng or "introduced_after" in rng)
            else None
        )
    if version and _is_version(version):
        if update and update not in ("*", "-", ""):
            if re.fullmatch(r"r\d+(?:\.\d+)*", update, re.I):  # Ivanti/Pulse 9.1:r18 -> 9.1R18
                version = f"{version}R{update[1:]}"
            elif re.fullmatch(r"h?\d+", update, re.I):  # PAN-OS 10.2.9:h1 -> 10.2.9-h1
                version = f"{version}-{update}"
            else:  # "cumulative_update_19", "sp1": not comparable with a scanned version
                return None
        return {"introduced": version, "last_affected": version}
    return None


def ranges_from_nvd(cve: Mapping[str, Any]) -> _Found:
    """Ranges of one NVD CVE object (API 2.0 ``cve``) or 1.1 feed item."""
    found = _Found(label="NVD configuration")
    confs = cve.get("configurations")
    nodes: list[Any] = []
    if isinstance(confs, list):  # 2.0: [{"nodes": [...]}, ...]
        for c in confs:
            if isinstance(c, dict):
                nodes.extend(c.get("nodes") or [])
    elif isinstance(confs, dict):  # 1.1: {"nodes": [...]}
        nodes = list(confs.get("nodes") or [])
    for m in _nvd_matches(nodes):
        crit = m.get("criteria") or m.get("cpe23Uri")
        if not isinstance(crit, str):
            continue
        parsed = parse_cpe(crit)
        if parsed is None:
            continue
        part, vendor, product, version = parsed
        if part == "h":
            continue
        fields = re.split(r"(?<!\\):", crit[8:]) if crit.lower().startswith("cpe:2.3:") else []
        update = fields[4].lower() if len(fields) > 4 else None
        found.add(canonical_product(vendor, product), _nvd_range(m, version, update))
    return found


# --- reading records ---------------------------------------------------------------------


def _load_json(path: Path) -> Any:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    elif path.suffix == ".xz":
        raw = lzma.decompress(raw)
    if len(raw) > MAX_RECORD_BYTES * 8:
        raise ValueError("file too large")
    return json.loads(raw)


def _records_in(doc: Any) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(cve_id, kind, record) of every record in one parsed file; kind ``cve5`` or ``nvd``."""
    if isinstance(doc, list):
        for d in doc:
            yield from _records_in(d)
        return
    if not isinstance(doc, dict):
        return
    meta = doc.get("cveMetadata")
    if isinstance(meta, dict) and meta.get("cveId"):
        yield str(meta["cveId"]).upper(), "cve5", doc
        return
    if isinstance(doc.get("vulnerabilities"), list):  # NVD API / 2.0 feed
        for v in doc["vulnerabilities"]:
            if isinstance(v, dict) and isinstance(v.get("cve"), dict) and v["cve"].get("id"):
                yield str(v["cve"]["id"]).upper(), "nvd", v["cve"]
        return
    if isinstance(doc.get("CVE_Items"), list):  # NVD 1.1 feed
        for it in doc["CVE_Items"]:
            cid = ((it.get("cve") or {}).get("CVE_data_meta") or {}).get("ID") if isinstance(it, dict) else None
            if cid:
                yield str(cid).upper(), "nvd", it
        return
    if isinstance(doc.get("cve"), dict):  # one API "vulnerabilities" item, or a 1.1 item
        inner = doc["cve"]
        cid = (
            inner.get("id")
            or (inner.get("CVE_data_meta") or {}).get("ID")
            or (doc.get("_annotation") or {}).get("cve_id")
        )
        if cid:
            yield str(cid).upper(), "nvd", inner if "configurations" in inner else doc
        return
    if doc.get("id") and ("configurations" in doc or "sourceIdentifier" in doc):  # NVD cve object
        yield str(doc["id"]).upper(), "nvd", doc


def iter_records(
    paths: Iterable[str | Path], wanted: set[str] | None = None, problems: list[str] | None = None
) -> Iterator[tuple[str, str, Mapping[str, Any], str]]:
    """Every record under ``paths`` (files or directories, searched recursively).

    Files named after one CVE (``CVE-2024-3400.json``) are opened only when that CVE is
    wanted, so a full cvelistV5 or NVD mirror costs one ``stat`` per unwanted record.
    Unreadable files are noted in ``problems`` and skipped.

    Yields
    ------
    (cve_id, kind, record, file)
    """
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise InputError(
                "records path does not exist", path=root, hint="give a directory of CVE JSON 5 records or NVD CVE JSON"
            )
        files = (
            [root]
            if root.is_file()
            else sorted(
                p for p in root.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz", ".json.xz"))
            )
        )
        for f in files:
            stem = f.name.split(".json")[0]
            m = _CVE_FILE.match(stem)
            if m and wanted is not None and m.group(1).upper() not in wanted:
                continue
            try:
                doc = _load_json(f)
            except (OSError, ValueError, EOFError, lzma.LZMAError) as e:
                if problems is not None:
                    problems.append(f"{f}: {e}")
                continue
            for cid, kind, rec in _records_in(doc):
                if wanted is None or cid in wanted:
                    yield cid, kind, rec, str(f)


def _record_date(kind: str, rec: Mapping[str, Any]) -> str:
    if kind == "cve5":
        return str((rec.get("cveMetadata") or {}).get("dateUpdated") or "")
    return str(
        rec.get("lastModified") or rec.get("lastModifiedDate") or (rec.get("_annotation") or {}).get("modified") or ""
    )


def load_overrides(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Hand-written ranges for records known to be wrong (bundled, or ``path``); each entry
    needs ``cve``, ``products`` and a ``reason``."""
    origin = str(path) if path else "sightline/data/exposure/cve_range_overrides.json"
    try:
        raw = (
            Path(path).read_bytes()
            if path
            else resources.files("sightline").joinpath("data", "exposure", "cve_range_overrides.json").read_bytes()
        )
        doc = json.loads(raw)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read range overrides: {e}", path=origin, hint="check the file") from e
    entries = doc.get("overrides") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise InputError("overrides file has no 'overrides' list", path=origin, hint="see cve_range_overrides.json")
    for i, e in enumerate(entries):
        if not (isinstance(e, dict) and e.get("cve") and isinstance(e.get("products"), dict) and e.get("reason")):
            raise InputError(
                "an override needs cve, products and reason",
                path=origin,
                position=i,
                hint="every override must say why the record is wrong",
            )
    return entries


@dataclass
class RangeBuild:
    """The built table and how it was made."""

    entries: list[dict[str, Any]]
    unranged: dict[str, str]  # CVE -> why it got no ranges
    coverage: dict[str, Any]
    problems: list[str]

    def document(self, *, kev_version: str = "", built_from: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "schema": "sightline.cve_ranges/2",
            "description": (
                "Version ranges of CISA KEV CVEs, generated by sightline.exposure.records from CVE JSON 5 "
                "records (CNA and CISA ADP containers) and NVD CVE configurations; hand-written overrides "
                "replace records known to be wrong. Keys of 'products' are canonical vendor:product ids "
                "(NVD CPE names, aliases folded: sightline/exposure/cpe.py). A range is {introduced?, fixed} "
                "(fixed exclusive) or {introduced?, last_affected} (inclusive); introduced_after is an "
                "exclusive start; a bare string is one exact version. 'all_versions' lists products a record names without version bounds. "
                "Record data: CVE List (CVE Program terms of use, free to use) and NVD (US government "
                "work, public domain); cisagov/vulnrichment is CC0."
            ),
            "kev_catalog": kev_version,
            "built_from": built_from or [],
            "coverage": self.coverage,
            "unranged": dict(sorted(self.unranged.items())),
            "cves": self.entries,
        }


def _empty(rng: Range) -> bool:
    """A range no version can be in (start above end): a record error, dropped."""
    lo = rng.get("introduced") or rng.get("introduced_after")
    hi = rng.get("fixed") or rng.get("last_affected")
    if lo is None or hi is None:
        return False
    lk, hk = version_key(lo), version_key(hi)
    if lk is None or hk is None:
        return True
    return lk > hk or (lk == hk and ("fixed" in rng or "introduced_after" in rng))


def _compact(rng: Range | str) -> Range | str:
    """One exact version is written as the bare string (halves NVD's long version lists)."""
    if (
        isinstance(rng, dict)
        and len(rng) == 2
        and rng.get("introduced") is not None
        and rng.get("introduced") == rng.get("last_affected")
    ):
        return rng["introduced"]
    return rng


def _kev_hosted(kev_row: Mapping[str, Any] | None) -> bool:
    if not kev_row:
        return False
    text = " ".join(str(kev_row.get(k) or "") for k in ("product", "vulnerabilityName", "shortDescription"))
    return bool(re.search(r"\b(cloud service|hosted|SaaS|online service)\b", text, re.I))


def build_ranges(
    kev_cves: Iterable[str],
    cve_record_paths: Iterable[str | Path] = (),
    nvd_paths: Iterable[str | Path] = (),
    overrides: list[dict[str, Any]] | None = None,
    kev_rows: Mapping[str, Mapping[str, Any]] | None = None,
) -> RangeBuild:
    """Ranges for every wanted CVE from CVE JSON 5 records and NVD configurations.

    Parameters
    ----------
    kev_cves
        The CVE ids to build for (the KEV catalog's).
    cve_record_paths, nvd_paths
        Files or directories of records; either kind may hold either format (the format is
        read from each document), the names only say what the user meant.
    overrides
        :func:`load_overrides` entries; the bundled ones when None.
    kev_rows
        KEV catalog entries by CVE, to tell hosted services from missing records.

    Returns
    -------
    RangeBuild
    """
    wanted = {c.upper() for c in kev_cves}
    overrides = load_overrides() if overrides is None else overrides
    problems: list[str] = []
    best: dict[tuple[str, str], tuple[str, Mapping[str, Any], str]] = {}  # (cve, kind) -> (date, rec, file)
    for cid, kind, rec, fname in iter_records([*cve_record_paths, *nvd_paths], wanted, problems):
        date = _record_date(kind, rec)
        cur = best.get((cid, kind))
        if cur is None or date >= cur[0]:
            best[(cid, kind)] = (date, rec, fname)
    ov_by_cve: dict[str, list[dict[str, Any]]] = {}
    for o in overrides:
        ov_by_cve.setdefault(str(o["cve"]).upper(), []).append(o)

    entries: list[dict[str, Any]] = []
    unranged: dict[str, str] = {}
    by_source: Counter[str] = Counter()
    for cid in sorted(wanted, key=lambda c: (int(c.split("-")[1]), int(c.split("-")[2]))):
        rec5 = best.get((cid, "cve5"))
        recn = best.get((cid, "nvd"))
        f5 = ranges_from_cve_record(rec5[1]) if rec5 else _Found()
        fn = ranges_from_nvd(recn[1]) if recn else _Found()
        products: dict[str, list[Range]] = {}
        src: dict[str, str] = {}
        for pid, rngs in f5.bounded.items():
            products[pid], src[pid] = rngs, "cve_record"
        for pid, rngs in fn.bounded.items():
            if pid not in products:
                products[pid], src[pid] = rngs, "nvd_configuration"
        reasons = []
        for o in ov_by_cve.get(cid, []):
            for pid, rngs in o["products"].items():
                products[pid], src[pid] = list(rngs), "override"
            reasons.append(str(o["reason"]))
        unbounded = sorted((f5.unbounded | fn.unbounded) - set(products))
        if not products and not unbounded:
            if rec5 is None and recn is None:
                unranged[cid] = (
                    "hosted service" if _kev_hosted((kev_rows or {}).get(cid)) else "no record in the sources"
                )
            elif f5.no_versions and not fn.bounded:
                unranged[cid] = "record gives no versions (n/a)"
            else:
                unranged[cid] = "record names no affected product version"
            continue
        labels = []
        if any(s == "cve_record" for s in src.values()) or (f5.unbounded & set(unbounded)):
            labels.append(f5.label or "CVE record")
        if any(s == "nvd_configuration" for s in src.values()) or (fn.unbounded & set(unbounded)):
            labels.append("NVD configuration")
        if reasons:
            labels.append("override: " + "; ".join(reasons))
        for pid in list(products):
            kept = [r for r in products[pid] if not _empty(r)]
            if len(kept) < len(products[pid]):
                problems.append(f"{cid} {pid}: dropped {len(products[pid]) - len(kept)} empty range(s)")
            if kept:
                products[pid] = kept
            else:
                del products[pid]
                del src[pid]
        products = {pid: [_compact(r) for r in rngs] for pid, rngs in products.items()}
        entry: dict[str, Any] = {"cve": cid, "products": products, "range_source": src}
        if unbounded:
            entry["all_versions"] = unbounded
            for pid in unbounded:
                src.setdefault(pid, "cve_record" if pid in f5.unbounded else "nvd_configuration")
        entry["source"] = "; ".join(labels) or "records"
        entries.append(entry)
        if products:
            kinds = set(src.values())
            key = "override" if "override" in kinds else "+".join(sorted(kinds))
            by_source[key] += 1
        else:
            by_source["all_versions_only"] += 1
    with_ranges = sum(1 for e in entries if e["products"])
    coverage = {
        "kev_cves": len(wanted),
        "with_ranges": with_ranges,
        "with_ranges_share": round(with_ranges / len(wanted), 4) if wanted else 0.0,
        "by_source": dict(sorted(by_source.items())),
        "records_read": {
            "cve_record": sum(1 for k in best if k[1] == "cve5"),
            "nvd": sum(1 for k in best if k[1] == "nvd"),
        },
        "without_ranges": dict(sorted(Counter(unranged.values()).items())),
    }
    return RangeBuild(entries, unranged, coverage, problems)


def write_table(doc: Mapping[str, Any], out: str | Path) -> None:
    """Write the table compactly: one CVE entry per line (diffs stay readable)."""
    head = {k: v for k, v in doc.items() if k != "cves"}
    lines = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in doc["cves"]]
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2] + ',\n "cves": [\n' + ",\n".join(lines) + "\n ]\n}\n"
    json.loads(text)  # the hand-joined document must still be JSON
    from ..store import atomic_write_bytes

    atomic_write_bytes(Path(out), text.encode())


def _kev_catalog(path: str | None) -> tuple[list[str], dict[str, Mapping[str, Any]], str]:
    raw = (
        Path(path).read_bytes()
        if path
        else resources.files("sightline").joinpath("data", "kev", "known_exploited_vulnerabilities.json").read_bytes()
    )
    doc = json.loads(raw)
    rows = {v["cveID"].upper(): v for v in doc["vulnerabilities"]}
    return list(rows), rows, str(doc.get("catalogVersion", ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sightline.exposure.records", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cve-records", action="append", default=[], help="CVE JSON 5 records (dir or file)")
    ap.add_argument("--nvd", action="append", default=[], help="NVD CVE JSON (dir, feed file or record)")
    ap.add_argument("--kev", help="KEV catalog JSON (default: the bundled one)")
    ap.add_argument("--overrides", help="overrides JSON (default: the bundled one)")
    ap.add_argument("--note", action="append", default=[], help="provenance note for built_from, repeatable")
    ap.add_argument("--out", default="-", help="output path, '-' for stdout")
    a = ap.parse_args(argv)
    cves, rows, version = _kev_catalog(a.kev)
    build = build_ranges(cves, a.cve_records, a.nvd, load_overrides(a.overrides) if a.overrides else None, rows)
    built_from = (
        [{"cve_records": p} for p in a.cve_records] + [{"nvd": p} for p in a.nvd] + [{"note": n} for n in a.note]
    )
    doc = build.document(kev_version=version, built_from=built_from)
    if a.out == "-":
        json.dump(doc, sys.stdout, indent=1)
    else:
        write_table(doc, a.out)
    print(json.dumps(build.coverage, indent=1), file=sys.stderr)
    for p in build.problems[:20]:
        print("skipped", p, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
