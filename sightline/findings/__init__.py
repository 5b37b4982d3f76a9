"""The findings: typed model, assembly and schema, and the one sharing policy.

Public API::

    Findings, Organization, Host, Evidence, ...      # typed model (msgspec structs)
    from_dict(doc) / from_json(data) / to_json(f) / json_chunks(f)  # the findings.json contract
    load(path) -> Findings / save(findings, path)    # a findings.json file
    build_findings(...) -> Findings                  # assemble + validate
    validate_findings(doc)                           # against findings.schema.json
    summarize(organizations) -> dict                 # the one summary count
    share(findings, audience, ...) -> Shared         # what one audience may see
    Audience, audience_for(ws, clearance, anonymize)
"""

from __future__ import annotations

import itertools
from pathlib import Path

from ..errors import InputError
from .build import build_findings, findings_schema, validate_findings
from .model import (
    SCHEMA_ID,
    ActorInfraSummary,
    ActorServer,
    Cluster,
    Evidence,
    Exposure,
    ExposureCVE,
    Findings,
    Handoff,
    Host,
    Organization,
    StaleMatch,
    Suppressed,
    SuppressionInfo,
    SuspectedInfrastructure,
    TimelineEntry,
    Window,
    from_dict,
    from_json,
    json_chunks,
    summarize,
    to_json,
)
from .share import Audience, Shared, audience_for, share, share_indicators

__all__ = [
    "SCHEMA_ID",
    "ActorInfraSummary",
    "ActorServer",
    "Audience",
    "Cluster",
    "Evidence",
    "Exposure",
    "ExposureCVE",
    "Findings",
    "Handoff",
    "Host",
    "Organization",
    "Shared",
    "StaleMatch",
    "Suppressed",
    "SuppressionInfo",
    "SuspectedInfrastructure",
    "TimelineEntry",
    "Window",
    "audience_for",
    "build_findings",
    "findings_schema",
    "from_dict",
    "from_json",
    "load",
    "save",
    "share",
    "share_indicators",
    "summarize",
    "to_json",
    "json_chunks",
    "validate_findings",
]


def save(findings: Findings, path: Path, *, indent: int = 0) -> None:
    """Write ``findings`` to ``path`` as findings.json text (``indent``: 0 compact), atomically
    and one organization at a time (never the whole text in memory)."""
    from ..store import atomic_write_chunks

    atomic_write_chunks(Path(path), itertools.chain(json_chunks(findings, indent=indent), [b"\n"]))


def load(path: Path) -> Findings:
    """Read a ``findings.json`` file.

    Raises
    ------
    InputError
        The file is missing, not JSON, or not a findings document; the message says what to do.
    """
    import msgspec

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(
            f"cannot read findings: {e.strerror or e}",
            path=path,
            hint="run `sightline hunt` or `sightline detect` first, or pass the right file",
        ) from e
    try:
        return from_json(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
        raise InputError(
            f"not a sightline findings document: {e}",
            path=path,
            hint="pass the findings.json written by `sightline hunt`",
        ) from e
