"""The findings document (``findings.json``, schema ``sightline.findings/1``).

Built from an :class:`sightline.assess.Assessment`; validated against the JSON Schema
shipped beside this module (``findings.schema.json``).
"""

from __future__ import annotations

import functools
import json
from collections import Counter, defaultdict
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from .. import __version__
from ..errors import SightlineError
from ..jsonschemas import load as load_jsonschema

SCHEMA_ID = "sightline.findings/1"
TLP_ORDER = ("clear", "green", "amber", "amber+strict", "red")


def findings_schema() -> dict[str, Any]:
    return json.loads(resources.files("sightline.report").joinpath("findings.schema.json").read_text("utf-8"))


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    """The findings schema's validator, built (and the schema checked) once per process."""
    jsonschema = load_jsonschema()
    schema = findings_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@functools.lru_cache(maxsize=1)
def _fast_validator() -> Any:
    """jsonschema-rs for the common case (a valid document): ~100x faster, which matters for
    findings of hundreds of megabytes; None where it is not installed."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(findings_schema(), validate_formats=False)


def validate_findings(doc: dict[str, Any]) -> None:
    """Raise :class:`SightlineError` if ``doc`` does not follow the findings schema."""
    fast = _fast_validator()
    if fast is not None:
        try:
            if fast.is_valid(doc):
                return
        except Exception:  # a value it cannot take: let jsonschema judge the document
            pass
    # invalid (or no fast validator): jsonschema names the most relevant error
    v = _validator()
    e = load_jsonschema().exceptions.best_match(v.iter_errors(doc))
    if e is not None:
        path = "/".join(str(p) for p in e.absolute_path)
        raise SightlineError(f"findings do not follow {SCHEMA_ID}: {e.message}", field=path or None) from e


def summarize(organizations: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by verdict, and verdict counts by sector and by country (missing: "unknown").

    The one place summaries are computed: reports, TLP filters, suppressions and the
    dashboard's clearance filter all recount through it."""
    by_verdict = Counter(str(o.get("verdict") or "none") for o in organizations)
    by_sector: dict[str, Counter] = defaultdict(Counter)
    by_country: dict[str, Counter] = defaultdict(Counter)
    for o in organizations:
        v = str(o.get("verdict") or "none")
        by_sector[str(o.get("sector") or "unknown")][v] += 1
        by_country[str(o.get("country") or "unknown")][v] += 1
    return {
        "by_verdict": {v: by_verdict.get(v, 0) for v in ("compromised", "exploitation_attempt", "reconnaissance")},
        "by_sector": {k: dict(v) for k, v in sorted(by_sector.items())},
        "by_country": {k: dict(v) for k, v in sorted(by_country.items())},
    }


def build_findings(
    organizations: list[dict[str, Any]],
    *,
    window: tuple[str | None, str | None],
    inputs: dict[str, int],
    stale_matches: list[dict[str, Any]] | None = None,
    suspected_infrastructure: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    run_id: str | None = None,
    engine: str = "duckdb",
) -> dict[str, Any]:
    """Assemble and validate the findings document."""
    tlps = [o.get("tlp", "clear") for o in organizations]
    tlps += [s.get("tlp", "clear") for s in (stale_matches or [])]
    actors = sorted({
        a.strip() for o in organizations for h in o["hosts"] for e in h["evidence"]
        for a in (e.get("actor") or "").split(";") if a.strip()
    })
    doc: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "sightline_version": __version__,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run_id": run_id,
        "engine": engine,
        "window": {"start": window[0], "end": window[1]},
        "inputs": dict(inputs),
        "tlp": max(tlps, key=TLP_ORDER.index) if tlps else "clear",
        "actors": actors,
        "organizations": organizations,
        "stale_matches": stale_matches or [],
        "suspected_infrastructure": suspected_infrastructure or [],
        "summary": summarize(organizations),
    }
    if extra:
        doc.update(extra)
    if doc["run_id"] is None:
        del doc["run_id"]
    validate_findings(doc)
    return doc


__all__ = ["SCHEMA_ID", "findings_schema", "validate_findings", "summarize", "build_findings"]
