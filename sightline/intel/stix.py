"""STIX 2.1 (and 2.0) bundles -> indicator rows.

What is read:

- ``indicator`` objects with ``pattern_type`` ``stix``.  A pattern is compiled into a set of
  atoms the engine can match (IP/CIDR, IP+port, domain, URL, certificate hash or serial,
  file hash).  ``OR`` (in or between observations) gives one row per branch; ``AND`` inside
  one observation is kept when it narrows one atom (``network-traffic:dst_ref.value = X AND
  network-traffic:dst_port = 443``); ``IN (...)`` and ``ISSUBSET 'cidr'`` are expanded;
  ``START ... STOP`` narrows the validity window.  Everything else (``FOLLOWEDBY``,
  ``AND`` between observations, ``WITHIN``/``REPEATS``, ``LIKE``/``MATCHES``, negation,
  properties flows do not carry) is reported in the source's skips with the part that
  could not be evaluated; the evaluable branches of an ``OR`` are still loaded.
- ``infrastructure`` objects: the SCOs they ``consists-of`` (ipv4-addr, ipv6-addr,
  domain-name, url) become indicators with the infrastructure's window and markings.
- ``threat-actor`` / ``intrusion-set`` / ``campaign`` names become the ``actor`` of the
  indicators linked to them by ``indicates``, ``attributed-to``, ``uses``, ``consists-of``
  relationships (nearest actor wins).
- ``vulnerability`` objects an actor-linked object ``exploits`` / ``targets`` / ``uses``
  give :attr:`IntelLoad.actor_cves`.
- Versions: for each id the newest ``modified`` wins; ``revoked: true`` revokes the id.
- TLP 1.0 (``definition_type: tlp``) and TLP 2.0 marking definitions, by well-known id or by
  the definition objects in the bundle; the most restrictive marking applies.

A malformed object (it fails ``stix2.parse``) is skipped with its id and the library's
message; the rest of the bundle is imported.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import stix2
import stix2.exceptions
from stix2 import patterns as sp
from stix2.pattern_visitor import create_pattern_object

from .model import RowBuilder, most_restrictive_tlp, normalize_confidence, normalize_tlp, parse_time

# Well-known marking-definition ids (STIX 2.1 spec section 7.2.1.4 for TLP 1.0; the OASIS
# TLP 2.0 extension for TLP 2.0).
TLP_MARKING_IDS: dict[str, str] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "clear",  # TLP 1.0 WHITE
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "red",
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": "clear",  # TLP 2.0
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": "green",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": "amber",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": "amber+strict",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": "red",
}

ACTOR_TYPES = ("intrusion-set", "threat-actor", "campaign")
_LINKS = (
    "indicates",
    "attributed-to",
    "uses",
    "consists-of",
    "based-on",
    "related-to",
    "controls",
    "has",
    "hosts",
    "owns",
    "authored-by",
    "variant-of",
)


class Unsupported(Exception):
    """A pattern part the engine cannot evaluate."""


@dataclass(frozen=True)
class Atom:
    kind: str  # model kinds: ip, domain, url, x509_sha256, ... (ip_port is ip + port)
    value: str
    port: int | None = None
    dropped: tuple[str, ...] = ()  # conjuncts of the pattern that could not be evaluated


@dataclass
class CompiledPattern:
    atoms: list[Atom] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    start: datetime | None = None
    stop: datetime | None = None


# --- pattern compilation ------------------------------------------------------------------

_HASH_KIND = {"sha-256": "sha256", "sha256": "sha256", "sha-1": "sha1", "sha1": "sha1", "md5": "md5"}


def _path(lhs: sp.ObjectPath) -> tuple[str, list[str]]:
    parts = []
    for c in lhs.property_path:
        name = str(getattr(c, "property_name", c)).strip("'").lower()
        if getattr(c, "index", None) is not None:
            name += "[*]"
        parts.append(name)
    return str(lhs.object_type_name), parts


def _leaf_key(obj: str, parts: list[str]) -> str:
    """Which atom property a comparison constrains (raises Unsupported)."""
    p = ".".join(parts)
    if obj in ("ipv4-addr", "ipv6-addr") and p == "value":
        return "ip"
    if obj == "domain-name" and p == "value":
        return "domain"
    if obj == "url" and p == "value":
        return "url"
    if obj == "network-traffic":
        if p in ("dst_ref.value", "src_ref.value"):
            return "ref:" + p.split("_", 1)[0]
        if p in ("dst_port", "src_port"):
            return "port:" + p.split("_", 1)[0]
    if obj == "x509-certificate":
        if p == "serial_number":
            return "x509_serial"
        if len(parts) == 2 and parts[0] == "hashes" and parts[1] in _HASH_KIND:
            return "x509_" + _HASH_KIND[parts[1]]
    if obj == "file" and len(parts) == 2 and parts[0] == "hashes" and parts[1] in _HASH_KIND:
        return "file_hash"
    raise Unsupported(f"{obj}:{p} is not carried by flows")


def _const(c: Any) -> Any:
    return c.value


def _comparison(e: Any) -> list[dict[str, Any]]:
    """A comparison expression -> alternatives, each a dict of constraints (all must hold)."""
    if isinstance(e, sp.ParentheticalExpression):
        return _comparison(e.expression)
    if isinstance(e, sp.OrBooleanExpression):
        out: list[dict[str, Any]] = []
        errors = []
        for op in e.operands:
            try:
                out.extend(_comparison(op))
            except Unsupported as u:
                errors.append(str(u))
        if errors and not out:
            raise Unsupported("; ".join(errors))
        if errors:
            out.append({"__unsupported__": "; ".join(errors)})
        return out
    if isinstance(e, sp.AndBooleanExpression):
        # A conjunct flows do not carry (x509 issuer, a LIKE) is dropped and recorded: the
        # rest still names the observable, only less narrowly, so the row is loaded with
        # lower confidence (see _read_indicator) and the dropped part is reported.
        combos: list[dict[str, Any]] = [{}]
        dropped: list[str] = []
        for op in e.operands:
            try:
                alts = _comparison(op)
            except Unsupported as u:
                dropped.append(f"{op} ({u})")
                continue
            if any("__unsupported__" in a for a in alts):
                dropped.append(str(op))
                continue
            nxt = []
            for c in combos:
                for a in alts:
                    if any(k in c and c[k] != v and k != "__dropped__" for k, v in a.items()):
                        continue  # contradictory branch (x = 'a' AND x = 'b') matches nothing
                    merged = {**c, **a}
                    if "__dropped__" in c and "__dropped__" in a:
                        merged["__dropped__"] = c["__dropped__"] + a["__dropped__"]
                    nxt.append(merged)
            combos = nxt
        if dropped:
            if all(not c for c in combos):
                raise Unsupported("; ".join(dropped))
            combos = [{**c, "__dropped__": dropped} for c in combos]
        return combos
    if getattr(e, "negated", False):
        raise Unsupported(f"negated comparison {e}")
    if isinstance(e, sp.EqualityComparisonExpression):
        key = _leaf_key(*_path(e.lhs))
        return [{key: _const(e.rhs)}]
    if isinstance(e, sp.InComparisonExpression):
        key = _leaf_key(*_path(e.lhs))
        return [{key: _const(v)} for v in e.rhs.value]
    if isinstance(e, sp.IsSubsetComparisonExpression):
        key = _leaf_key(*_path(e.lhs))
        if key not in ("ip", "ref:dst", "ref:src"):
            raise Unsupported(f"ISSUBSET on {key}")
        return [{key: _const(e.rhs)}]
    raise Unsupported(f"operator {getattr(e, 'operator', type(e).__name__)} in {e}")


def _to_atom(c: dict[str, Any]) -> Atom:
    dropped = tuple(c.get("__dropped__", ()))
    c = {k: v for k, v in c.items() if k != "__dropped__"}
    keys = set(c)
    ports = {k for k in keys if k.startswith("port:")}
    refs = {k for k in keys if k.startswith("ref:")}
    values = keys - ports - refs
    if refs:
        if len(refs) > 1 or values:
            raise Unsupported("several addresses in one observation (src and dst) need flow correlation")
        ref = refs.pop()
        side = ref.split(":")[1]
        if ports and ports != {f"port:{side}"}:
            raise Unsupported("a port on the other side of the connection than the address")
        port = c.get(f"port:{side}")
        value = str(c[ref])
        kind = "ip" if re.match(r"^[0-9a-fA-F:.\[\]/]+$", value) and any(ch.isdigit() for ch in value) else "domain"
        return Atom(kind, value, int(port) if port is not None else None, dropped)
    if ports:
        raise Unsupported("a port without an address")
    if len(values) != 1:
        raise Unsupported("several different properties in one observation")
    k = values.pop()
    return Atom(k, str(c[k]), None, dropped)


def _observation(e: Any, out: CompiledPattern) -> None:
    if isinstance(e, sp.ParentheticalExpression):
        _observation(e.expression, out)
    elif isinstance(e, sp.OrObservationExpression):
        for op in e.operands:
            _observation(op, out)
    elif isinstance(e, sp.QualifiedObservationExpression):
        q = e.qualifier
        if isinstance(q, sp.StartStopQualifier):
            out.start = q.start_time.value
            out.stop = q.stop_time.value
            _observation(e.observation_expression, out)
        else:
            out.unsupported.append(f"qualifier {q} needs flow correlation: {e}")
    elif isinstance(e, sp.ObservationExpression):
        try:
            alts = _comparison(e.operand)
        except Unsupported as u:
            out.unsupported.append(f"{u} in {e}")
            return
        for a in alts:
            if "__unsupported__" in a:
                out.unsupported.append(f"{a['__unsupported__']} in {e}")
                continue
            try:
                out.atoms.append(_to_atom(a))
            except Unsupported as u:
                out.unsupported.append(f"{u} in {e}")
    elif isinstance(e, (sp.AndObservationExpression, sp.FollowedByObservationExpression)):
        out.unsupported.append(f"{e.operator} between observations needs flow correlation: {e}")
    else:
        out.unsupported.append(f"{type(e).__name__}: {e}")


def compile_pattern(pattern: str, version: str = "2.1") -> CompiledPattern:
    """Compile a STIX pattern into atoms the engine can match plus the parts it cannot.

    Raises ``ValueError`` when the pattern does not parse.
    """
    try:
        ast = create_pattern_object(pattern, version=version)
    except Exception as e:  # the ANTLR-based parser raises several exception types
        raise ValueError(f"bad pattern: {e}") from e
    out = CompiledPattern()
    _observation(ast, out)
    return out


# --- bundle reading -----------------------------------------------------------------------


def _tlp_of(obj: dict[str, Any], local: dict[str, str]) -> str | None:
    levels = []
    for ref in obj.get("object_marking_refs") or []:
        lv = TLP_MARKING_IDS.get(ref) or local.get(ref)
        if lv:
            levels.append(lv)
    return most_restrictive_tlp(levels)


def _marking_level(md: dict[str, Any]) -> str | None:
    """TLP level of a marking-definition object (TLP 1.0 definition or TLP 2.0 by name)."""
    if md.get("id") in TLP_MARKING_IDS:
        return TLP_MARKING_IDS[md["id"]]
    try:
        if md.get("definition_type") == "tlp":
            return normalize_tlp((md.get("definition") or {}).get("tlp"))
        name = str(md.get("name") or "")
        if name.upper().startswith("TLP:"):
            return normalize_tlp(name)
    except ValueError:
        return None
    return None


def _cves(v: dict[str, Any]) -> list[str]:
    out = []
    for ref in v.get("external_references") or []:
        if str(ref.get("source_name", "")).lower() == "cve" and ref.get("external_id"):
            out.append(str(ref["external_id"]).upper())
    name = str(v.get("name") or "")
    if re.match(r"^CVE-\d{4}-\d{4,}$", name, flags=re.IGNORECASE):
        out.append(name.upper())
    return out


class BundleResult:
    def __init__(self) -> None:
        self.actor_cves: set[str] = set()
        self.actors: set[str] = set()
        self.revoked_ids: set[str] = set()
        self.replaced_ids: set[str] = set()


def objects_from_json(data: Any) -> tuple[list[Any], str]:
    """The object list of a bundle, a TAXII envelope, a list, or one object; and the spec version."""
    if isinstance(data, dict) and isinstance(data.get("objects"), list):
        version = "2.0" if data.get("spec_version") == "2.0" else "2.1"
        return data["objects"], version
    if isinstance(data, list):
        return data, "2.1"
    if isinstance(data, dict) and "type" in data:
        return [data], "2.1"
    raise ValueError("not a STIX bundle: no 'objects' list")


def read_stix_objects(objs: list[Any], b: RowBuilder, version: str = "2.1") -> BundleResult:
    """Read STIX objects into ``b``; malformed objects are skipped with their id and reason."""
    res = BundleResult()
    rep = b.report
    latest: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for i, o in enumerate(objs):
        if not isinstance(o, dict) or not isinstance(o.get("id"), str) or not isinstance(o.get("type"), str):
            rep.read += 1
            rep.skip(f"object #{i}", "malformed object: not a JSON object with 'type' and 'id'", json.dumps(o)[:200])
            continue
        oid = o["id"]
        prev = latest.get(oid)
        if prev is None:
            order.append(oid)
            latest[oid] = o
        elif str(o.get("modified", "")) >= str(prev.get("modified", "")):
            latest[oid] = o  # newer version of the same object supersedes the older one
    valid: dict[str, dict[str, Any]] = {}
    for oid in order:
        o = latest[oid]
        rep.read += 1
        v = version if "spec_version" not in o else str(o["spec_version"])
        try:
            stix2.parse(o, allow_custom=True, version="2.0" if v == "2.0" else "2.1")
        except (stix2.exceptions.STIXError, ValueError, TypeError, KeyError, AttributeError) as e:
            # AttributeError: stix2 assumes dict-typed properties (e.g. extensions: true)
            rep.skip(f"object {oid}", f"malformed object: {e}")
            continue
        valid[oid] = o

    local_tlp = {oid: lv for oid, o in valid.items() if o["type"] == "marking-definition" if (lv := _marking_level(o))}
    # relationship graph (undirected for actor attribution; directed for CVEs)
    adj: dict[str, list[str]] = {}
    consists: dict[str, list[str]] = {}
    rels = [o for o in valid.values() if o["type"] == "relationship" and not o.get("revoked")]
    for r in rels:
        if r.get("relationship_type") == "consists-of":
            consists.setdefault(r["source_ref"], []).append(r["target_ref"])
        if r.get("relationship_type") in _LINKS:
            adj.setdefault(r["source_ref"], []).append(r["target_ref"])
            adj.setdefault(r["target_ref"], []).append(r["source_ref"])
    actor_name = {
        oid: str(o.get("name") or oid) for oid, o in valid.items() if o["type"] in ACTOR_TYPES and not o.get("revoked")
    }

    def actor_of(oid: str) -> str | None:
        # nearest intrusion-set / threat-actor / campaign; an intrusion-set or threat actor
        # beats a campaign at the same distance
        seen = {oid}
        frontier = deque([oid])
        while frontier:
            level = list(frontier)
            frontier.clear()
            found = [actor_name[x] for x in level if x in actor_name and valid[x]["type"] != "campaign"]
            found = found or [actor_name[x] for x in level if x in actor_name]
            if found:
                return sorted(found)[0]
            for x in level:
                for y in adj.get(x, ()):
                    if y not in seen:
                        seen.add(y)
                        frontier.append(y)
        return None

    res.actors = set(actor_name.values())
    for r in rels:
        tgt = valid.get(r["target_ref"])
        if tgt and tgt["type"] == "vulnerability" and r.get("relationship_type") in ("exploits", "targets", "uses"):
            if r["source_ref"] in actor_name or actor_of(r["source_ref"]):
                res.actor_cves.update(_cves(tgt))

    for oid in order:
        o = valid.get(oid)
        if o is None:
            continue
        t = o["type"]
        if o.get("revoked") and t in ("indicator", "infrastructure"):
            res.revoked_ids.add(oid)
            rep.revoked += 1
            continue
        if t == "indicator":
            res.replaced_ids.add(oid)
            _read_indicator(o, b, local_tlp, actor_of(oid), version)
        elif t == "infrastructure":
            res.replaced_ids.add(oid)
            _read_infrastructure(o, valid, consists, b, local_tlp, actor_of(oid))
    return res


def _describe(o: dict[str, Any]) -> str | None:
    parts = [str(o["name"])] if o.get("name") else []
    types = o.get("indicator_types") or o.get("infrastructure_types") or o.get("labels")
    if types:
        parts.append("(" + ", ".join(map(str, types)) + ")")
    return " ".join(parts) or None


def _read_indicator(
    o: dict[str, Any], b: RowBuilder, local_tlp: dict[str, str], actor: str | None, version: str
) -> None:
    oid = o["id"]
    where = f"object {oid}"
    ptype = o.get("pattern_type", "stix")
    if ptype != "stix":
        b.report.skip(where, f"unsupported pattern: pattern_type {ptype!r}", o.get("pattern"))
        return
    try:
        cp = compile_pattern(str(o.get("pattern", "")), "2.0" if o.get("spec_version") == "2.0" else version)
    except ValueError as e:
        b.report.skip(where, str(e), o.get("pattern"))
        return
    for u in cp.unsupported:
        b.report.skip(where, f"unsupported pattern: {u}", o.get("pattern"))
    vf = o.get("valid_from")
    vu = o.get("valid_until")
    try:
        if cp.start is not None:
            vf = max(b_time(cp.start), b_time(vf)) if vf else cp.start
        if cp.stop is not None:
            vu = min(b_time(cp.stop), b_time(vu)) if vu else cp.stop
    except ValueError as e:
        b.report.skip(where, str(e), o.get("pattern"))
        return
    try:
        conf = normalize_confidence(o.get("confidence"))
    except ValueError as e:  # a list, an object, true, 250 ...: the indicator is skipped, said why
        b.report.skip(where, str(e), o.get("pattern"))
        return
    for a in cp.atoms:
        c = conf
        desc = _describe(o)
        if a.dropped:
            # less specific than the source meant: halve the confidence and say why
            c = (b.default_confidence if conf is None else conf) // 2
            desc = f"{desc or ''} [not evaluated: {'; '.join(a.dropped)}]".strip()
            b.report.notes.append(f"{oid}: partial pattern, not evaluated: {'; '.join(a.dropped)}")
        b.add(
            a.kind,
            a.value,
            position=where,
            port=a.port,
            actor=actor,
            valid_from=vf,
            valid_until=vu,
            confidence=c,
            tlp=_tlp_of(o, local_tlp),
            source_id=oid,
            description=desc,
        )


def b_time(v: Any) -> datetime:
    t = parse_time(v)
    if t is None:  # callers only pass non-empty values
        raise ValueError("bad value: empty time")
    return t


_SCO_KIND = {"ipv4-addr": "ip", "ipv6-addr": "ip", "domain-name": "domain", "url": "url"}


def _read_infrastructure(
    o: dict[str, Any],
    valid: dict[str, dict[str, Any]],
    consists: dict[str, list[str]],
    b: RowBuilder,
    local_tlp: dict[str, str],
    actor: str | None,
) -> None:
    oid = o["id"]
    for ref in consists.get(oid, ()):
        sco = valid.get(ref)
        if sco is None or sco["type"] not in _SCO_KIND:
            continue
        b.add(
            _SCO_KIND[sco["type"]],
            sco.get("value"),
            position=f"object {oid} -> {ref}",
            actor=actor,
            valid_from=o.get("first_seen"),
            valid_until=o.get("last_seen"),
            confidence=o.get("confidence"),
            tlp=_tlp_of(o, local_tlp) or _tlp_of(sco, local_tlp),
            source_id=oid,
            description=_describe(o),
        )


__all__ = [
    "TLP_MARKING_IDS",
    "Atom",
    "CompiledPattern",
    "compile_pattern",
    "read_stix_objects",
    "objects_from_json",
    "BundleResult",
]
