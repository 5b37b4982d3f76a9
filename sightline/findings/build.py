"""Assembling and validating the findings document.

:func:`build_findings` puts the stages' typed results together; :func:`validate_findings`
checks a document against the JSON Schema shipped beside this module
(``findings.schema.json``), the contract of design.md.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import msgspec

from .. import __version__
from ..errors import SightlineError
from ..jsonschemas import load as load_jsonschema
from .model import (
    SCHEMA_ID,
    ActorInfraSummary,
    ActorServer,
    Exposure,
    Findings,
    Organization,
    StaleMatch,
    SuspectedInfrastructure,
    Window,
    actors_of,
    summarize,
)

__all__ = ["findings_schema", "validate_findings", "build_findings"]


def findings_schema() -> dict[str, Any]:
    """The findings JSON Schema."""
    schema = json.loads(resources.files("sightline.findings").joinpath("findings.schema.json").read_text("utf-8"))
    assert isinstance(schema, dict)
    return schema


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


def skeleton(doc: Findings, limit: int = 20) -> Findings:
    """``doc`` with at most ``limit`` hosts per organization, ``limit`` evidence rows per host and
    ``50 * limit`` items per other list: every kind of item the document holds, bounded.

    The typed model already fixes each item's shape when it is built; what the schema adds on top
    (formats, enumerations, the document's assembly) is checked on this bounded sample by the hunt,
    so validating costs the same for 100 and for 400,000 evidence rows. Tests validate whole
    documents.
    """
    replace = msgspec.structs.replace
    orgs = [
        replace(o, hosts=[replace(h, evidence=h.evidence[:limit]) for h in o.hosts[:limit]]) for o in doc.organizations
    ]
    rows = 50 * limit
    return replace(
        doc,
        organizations=orgs,
        stale_matches=doc.stale_matches[:rows],
        suspected_infrastructure=doc.suspected_infrastructure[:rows],
        actor_infrastructure=doc.actor_infrastructure[:rows],
        exposure=None if doc.exposure is None else doc.exposure[:rows],
        suppressed=None if doc.suppressed is None else doc.suppressed[:rows],
    )


def validate_findings(doc: dict[str, Any] | Findings) -> None:
    """Raise :class:`SightlineError` if ``doc`` does not follow the findings schema."""
    if isinstance(doc, Findings):
        doc = doc.to_dict()
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


def build_findings(
    organizations: list[Organization],
    *,
    window: tuple[str | None, str | None],
    inputs: dict[str, int],
    stale_matches: list[StaleMatch] | None = None,
    suspected_infrastructure: list[SuspectedInfrastructure] | None = None,
    actor_infrastructure: tuple[list[ActorServer], ActorInfraSummary] | None = None,
    exposure: list[Exposure] | None = None,
    run_id: str | None = None,
    engine: str = "duckdb",
    workspace_state: str | None = None,
) -> Findings:
    """Assemble and validate the findings document."""
    servers, summary = actor_infrastructure if actor_infrastructure is not None else ([], None)
    doc = Findings(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        sightline_version=__version__,
        run_id=run_id,
        engine=engine,
        window=Window(start=window[0], end=window[1]),
        inputs=dict(inputs),
        actors=actors_of(e for _, _, e in _walk(organizations)),
        organizations=organizations,
        stale_matches=stale_matches or [],
        suspected_infrastructure=suspected_infrastructure or [],
        actor_infrastructure=servers,
        actor_infrastructure_summary=summary,
        exposure=exposure,
        summary=summarize(organizations),
        workspace_state=workspace_state,
    )
    validate_findings(skeleton(doc))
    return doc


def _walk(organizations: list[Organization]) -> Any:
    for o in organizations:
        for h in o.hosts:
            for e in h.evidence:
                yield o, h, e
