"""Reports and sharing: turn a findings document into what people and sensors consume.

One module per output: :mod:`.html` (self-contained page with SVG charts), :mod:`.markdown`,
:mod:`.stix` (STIX 2.1 bundle), :mod:`.misp` (MISP event), :mod:`.zeek_intel` (Zeek Intel
framework file), :mod:`.suricata` (rules); :mod:`.tlp` filters by TLP and pseudonymizes
victims; :mod:`.notify` writes one notice per affected organization.

:func:`render` is the single entry the CLI (``sightline report --format ...``) and the hunt
use.  Every output is marked with the most restrictive TLP of what it contains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import ConfigError
from ..workspace import atomic_write_json

__all__ = ["FORMATS", "DEFAULT_NAMES", "render", "prepare"]

FORMATS = ("html", "pdf", "md", "json", "stix", "misp", "zeek-intel", "suricata")
"""Formats :func:`render` writes."""

DEFAULT_NAMES = {
    "html": "report.html",
    "pdf": "report.pdf",
    "md": "report.md",
    "json": "findings.json",
    "stix": "findings.stix.json",
    "misp": "findings.misp.json",
    "zeek-intel": "intel.dat",
    "suricata": "sightline.rules",
}
"""File name used when ``out`` is a directory."""


def prepare(
    findings: dict[str, Any], *, tlp: str | None = None, anonymize: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """Apply the audience's TLP limit and pseudonymization; returns (findings, dropped names).

    With a limit, the returned document's ``tlp`` is the marking of what is left in it and
    ``tlp_withheld`` counts what was withheld (so the report can say so); the names of the
    withheld items are returned, never written into the document.  Without one, the
    document is returned unchanged.
    """
    from .tlp import anonymize_victims, filter_findings

    dropped: list[str] = []
    doc = findings  # without a limit the document goes out as is; renderers mark it themselves
    if tlp is not None:
        doc, dropped = filter_findings(findings, tlp)
        # Only the count goes into the shared document: the names of withheld items are
        # themselves restricted (e.g. a TLP:RED victim's id) and go back to the caller only.
        doc["tlp_withheld"] = len(dropped)
    if anonymize:
        doc = anonymize_victims(doc)
    return doc, dropped


def _target(out: Path, fmt: str) -> Path:
    out = Path(out)
    if out.is_dir() or (not out.suffix and not out.exists()):
        return out / DEFAULT_NAMES[fmt]
    return out


def render(
    findings: dict[str, Any],
    fmt: str,
    out: Path,
    *,
    indicators: pa.Table | None = None,
    tlp: str | None = None,
    anonymize: bool = False,
) -> list[Path]:
    """Write ``findings`` in format ``fmt`` to ``out`` (a file, or a directory for the default name).

    Parameters
    ----------
    findings
        The findings document (design.md "findings.json").
    fmt
        One of :data:`FORMATS`.
    out
        Output file, or a directory (then :data:`DEFAULT_NAMES` gives the file name).
    indicators
        Indicator table (``sightline.schema.INDICATOR_SCHEMA``) for richer STIX/MISP/Zeek/
        Suricata output; without it, indicators are taken from the findings.
    tlp
        Most restrictive TLP the audience may see; more restrictive content is dropped.
    anonymize
        Replace victim names, ids and addresses with stable pseudonyms.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ConfigError
        For an unknown format or TLP level.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}", field="format", hint="use one of " + ", ".join(FORMATS))
    doc, _ = prepare(findings, tlp=tlp, anonymize=anonymize)
    target = _target(out, fmt)
    if indicators is not None and tlp is not None:
        from .tlp import tlp_rank

        # Indicators the audience may not see must not reach it through the intel table either.
        keep = [tlp_rank(t) <= tlp_rank(tlp) for t in indicators.column("tlp").to_pylist()]
        indicators = indicators.filter(pa.array(keep, type=pa.bool_()))
    if fmt == "html":
        from .html import write_html

        write_html(doc, target)
    elif fmt == "pdf":
        from .pdf import write_pdf

        write_pdf(doc, target)
    elif fmt == "md":
        from .markdown import write_markdown

        write_markdown(doc, target)
    elif fmt == "json":
        atomic_write_json(target, doc)
    elif fmt == "stix":
        from .stix import to_stix_bundle

        atomic_write_json(target, to_stix_bundle(doc, indicators=indicators))
    elif fmt == "misp":
        from .misp import write_misp

        write_misp(doc, target, indicators=indicators)
    elif fmt == "zeek-intel":
        from .zeek_intel import write_zeek_intel

        write_zeek_intel(doc, target, indicators=indicators)
    else:
        from .suricata import write_rules

        write_rules(doc, target, indicators=indicators)
    return [target]
