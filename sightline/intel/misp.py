"""MISP events and feed files (JSON) -> indicator rows, through PyMISP's data model.

Accepted documents: ``{"Event": {...}}`` (an event or one feed file), ``{"response":
[{"Event": ...}, ...]}`` (REST search results) and a JSON list of events.

Mapping: ``ip-src``/``ip-dst`` -> IP, ``ip-src|port``/``ip-dst|port`` -> IP + port,
``domain``/``hostname`` -> domain, ``domain|ip`` -> both, ``url``, ``x509-fingerprint-*``,
``ja3-fingerprint-md5``, ``md5``/``sha1``/``sha256`` -> file hash; attributes inside MISP
objects too.  ``to_ids = false`` attributes (MISP's own flag for "not for detection") are
skipped with that reason, unless the source is read with ``include_non_ids`` (``intel add
--include-non-ids``, the ``[intel] include_non_ids`` setting): then they load like the others
and are counted as ``non_ids`` in the source's report (``intel status``), since analysts
hunting with a report's indicators want them whatever the producer's IDS flag says.  TLP comes from the attribute's ``tlp:*`` tag, else the event's.  The
actor is the event's threat-actor / intrusion-set galaxy cluster (or ``misp-galaxy:`` tag).
``first_seen``/``last_seen`` bound the window.  Sightings: false-positive sightings lower the
confidence by 25 each; counts go to the description.  Deleted attributes revoke their uuid.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymisp import MISPEvent

from .model import DEFAULT_CONFIDENCE, RowBuilder, normalize_tlp

_KIND = {
    "ip-src": "ip",
    "ip-dst": "ip",
    "ip-src|port": "ip_port",
    "ip-dst|port": "ip_port",
    "domain": "domain",
    "hostname": "domain",
    "url": "url",
    "uri": "url",
    "link": None,
    "x509-fingerprint-sha1": "x509_sha1",
    "x509-fingerprint-sha256": "x509_sha256",
    "x509-fingerprint-md5": "x509_md5",
    "ja3-fingerprint-md5": "ja3",
    "md5": "file_hash",
    "sha1": "file_hash",
    "sha256": "file_hash",
}
_REFERENCE_CATEGORIES = frozenset({"External analysis", "Internal reference", "Attribution", "Other"})
"""Categories whose ``to_ids = false`` attributes are references (the report's URL, a ticket),
never loaded as indicators, also with ``include_non_ids``."""
_ACTOR_GALAXIES = ("threat-actor", "mitre-intrusion-set", "intrusion-set", "microsoft-activity-group")


class MispResult:
    def __init__(self) -> None:
        self.actors: set[str] = set()
        self.revoked_ids: set[str] = set()
        self.replaced_ids: set[str] = set()


def looks_like_misp(data: Any) -> bool:
    if isinstance(data, dict):
        return "Event" in data or (isinstance(data.get("response"), list) and "objects" not in data)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return "Event" in data[0]
    return False


def _events(data: Any) -> list[Any]:
    if isinstance(data, dict) and "Event" in data:
        return [data]
    if isinstance(data, dict):
        return list(data.get("response") or [])
    return list(data)


def _tlp(tags: list[Any]) -> str | None:
    for t in tags:
        name = str(getattr(t, "name", "") or "")
        if name.lower().startswith("tlp:"):
            try:
                return normalize_tlp(name)
            except ValueError:
                continue
    return None


def _misp_event() -> MISPEvent:
    """A new PyMISP event; PyMISP is imported on first use, and its jsonschema without the
    format library that compiles grammars at import (3.6 s of every command otherwise)."""
    from ..jsonschemas import load

    load()
    from pymisp import MISPEvent

    return MISPEvent()


def _actors(ev: MISPEvent) -> list[str]:
    names = []
    for g in getattr(ev, "galaxies", []) or []:
        if str(getattr(g, "type", "")) in _ACTOR_GALAXIES:
            names.extend(str(c.value) for c in getattr(g, "clusters", []) or [])
    for t in ev.tags:
        name = str(getattr(t, "name", "") or "")
        m = re.match(r'^misp-galaxy:(threat-actor|mitre-intrusion-set|microsoft-activity-group)="(.+)"$', name)
        if m:
            names.append(m.group(2))
    return list(dict.fromkeys(names))


def read_misp(data: Any, b: RowBuilder, *, include_non_ids: bool = False) -> MispResult:
    """Read MISP events into ``b``; an event PyMISP cannot load is skipped with its uuid.

    ``include_non_ids`` loads ``to_ids = false`` attributes too (counted in ``report.non_ids``).
    """
    res = MispResult()
    rep = b.report
    for n, raw in enumerate(_events(data)):
        ev = _misp_event()
        where = f"event #{n}"
        try:
            if isinstance(raw, dict) and isinstance(raw.get("Event"), dict):
                where = f"event {raw['Event'].get('uuid', n)}"
            ev.load(raw)
        except Exception as e:  # noqa: BLE001
            # PyMISP's loader is third-party code on hostile input: besides PyMISPError it raises
            # OSError (object templates are opened by a name the event chooses), UnboundLocalError,
            # KeyError, ...; whatever it raises, the event is skipped with the reason
            rep.read += 1
            rep.skip(where, f"malformed event: {e}")
            continue
        try:
            ev_tlp = _tlp(ev.tags)
            actors = _actors(ev)
            res.actors.update(actors)
            actor = actors[0] if actors else None
            attrs = list(ev.attributes)
            for obj in ev.objects:
                attrs.extend(obj.attributes)
            for a in attrs:
                rep.read += 1
                uuid = str(getattr(a, "uuid", "") or "")
                pos = f"attribute {uuid or a.type}"
                if getattr(a, "deleted", False):
                    res.revoked_ids.add(uuid)
                    rep.revoked += 1
                    continue
                res.replaced_ids.add(uuid)
                atype = str(a.type)
                if atype == "domain|ip":
                    dom, _, ip = str(a.value).partition("|")
                    pairs = [("domain", dom), ("ip", ip)]
                elif _KIND.get(atype):
                    pairs = [(_KIND[atype], str(a.value))]
                else:
                    rep.skip(pos, f"unsupported type: MISP {atype!r}", str(a.value))
                    continue
                non_ids = not getattr(a, "to_ids", True)
                if non_ids and not include_non_ids:
                    rep.skip(pos, "not for detection: to_ids is false (--include-non-ids loads it)", str(a.value))
                    continue
                category = str(getattr(a, "category", "") or "")
                if non_ids and category in _REFERENCE_CATEGORIES:
                    # the report's own link ("External analysis"), not the actor's infrastructure
                    rep.skip(pos, f"reference, not an indicator: category {category!r}, to_ids false", str(a.value))
                    continue
                sightings = list(getattr(a, "sightings", []) or [])
                fp = sum(1 for s in sightings if str(getattr(s, "type", "0")) == "1")
                seen = len(sightings) - fp
                conf = max(0, DEFAULT_CONFIDENCE if not fp else b.default_confidence - 25 * fp)
                desc_parts = [str(ev.info)] if getattr(ev, "info", None) else []
                if getattr(a, "comment", None):
                    desc_parts.append(str(a.comment))
                if sightings:
                    desc_parts.append(f"{seen} sighting(s), {fp} false positive(s)")
                for kind, value in pairs:
                    added = b.add(
                        kind,
                        value,
                        position=pos,
                        actor=actor,
                        valid_from=getattr(a, "first_seen", None),
                        valid_until=getattr(a, "last_seen", None),
                        confidence=conf if fp else None,
                        tlp=_tlp(a.tags) or ev_tlp,
                        source_id=uuid,
                        description="; ".join(desc_parts) or None,
                    )
                    if added and non_ids:
                        rep.non_ids += 1
        except (AttributeError, TypeError, ValueError, KeyError) as e:
            # a loaded event can still hold values of the wrong shape (a tag without a name,
            # an attribute without a type): skip the event, keep the rest of the file
            rep.skip(where, f"malformed event: {type(e).__name__}: {e}")
            continue
    return res


__all__ = ["looks_like_misp", "read_misp", "MispResult"]
