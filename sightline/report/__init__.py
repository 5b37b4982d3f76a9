"""Reports and sharing: turn findings into what people and sensors consume.

One module per output: :mod:`.html` (self-contained page with SVG charts), :mod:`.markdown`,
:mod:`.pdf`, :mod:`.stix` (STIX 2.1 bundle), :mod:`.misp` (MISP event), :mod:`.zeek_intel`
(Zeek Intel framework file), :mod:`.suricata` (rules); :mod:`.notify` writes one notice per
affected organization.  Renderers only render: what an audience may see is decided before,
once, by the sharing policy (:func:`sightline.findings.share`).

:func:`render` is the single entry the CLI (``sightline report --format ...``) and the hunt
use.  Every output is headed with the TLP it was filtered to.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import ConfigError
from ..findings import Audience, Findings, Shared, from_dict, save, share, share_indicators

if TYPE_CHECKING:
    from ..store import Workspace

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


def _registry_networks(ws: Workspace | None) -> list[str]:
    if ws is None:
        return []
    try:
        from ..enrich.orgs import read_orgs

        orgs = read_orgs(ws)
    except Exception:  # no registry: victims are the findings' hosts only
        return []
    return [c for c in orgs.column("cidr").to_pylist() if c]


def prepare(
    findings: Findings | dict[str, Any],
    *,
    tlp: str | None = None,
    anonymize: bool = False,
    ws: Workspace | None = None,
    indicators: pa.Table | None = None,
    audience: Audience | None = None,
) -> tuple[Shared, pa.Table | None]:
    """What the audience may see: the shared findings and the indicator table that may go with them.

    The audience is ``audience``, else built from ``tlp`` / ``anonymize`` and the workspace
    (its default TLP and pseudonym secret).  The names of withheld items are on the returned
    :class:`Shared` (``withheld``), never in the document.
    """
    typed = findings if isinstance(findings, Findings) else from_dict(findings)
    if audience is None:
        if ws is not None:
            from ..findings import audience_for

            audience = audience_for(ws, tlp, anonymize=anonymize)
        else:
            from ..core.tlp import parse_tlp

            if anonymize:
                raise ConfigError("anonymizing needs a workspace (its pseudonym secret)", hint="pass --workspace DIR")
            audience = Audience(None if tlp is None else parse_tlp(tlp, what="TLP level"))
    shared = share(typed, audience, indicators=indicators, victim_networks=_registry_networks(ws))
    return shared, share_indicators(indicators, audience, shared)


def _target(out: Path, fmt: str) -> Path:
    out = Path(out)
    if out.is_dir() or (not out.suffix and not out.exists()):
        return out / DEFAULT_NAMES[fmt]
    return out


def render(
    findings: Findings | dict[str, Any],
    fmt: str,
    out: Path,
    *,
    indicators: pa.Table | None = None,
    tlp: str | None = None,
    anonymize: bool = False,
    ws: Workspace | None = None,
    audience: Audience | None = None,
) -> list[Path]:
    """Write ``findings`` in format ``fmt`` to ``out`` (a file, or a directory for the default name).

    Parameters
    ----------
    findings
        The workspace's findings (typed, or the findings.json dict).
    fmt
        One of :data:`FORMATS`.
    out
        Output file, or a directory (then :data:`DEFAULT_NAMES` gives the file name).
    indicators
        Indicator table (``sightline.schema.INDICATOR_SCHEMA``): today's markings, and richer
        STIX/MISP/Zeek/Suricata output; without it, indicators are taken from the findings.
    tlp
        Most restrictive TLP the audience may see; more restrictive content is withheld and
        everything derived is recomputed from what is left.
    anonymize
        Replace victim names, ids and addresses with keyed pseudonyms (needs ``ws``).
    ws
        The workspace: its default TLP for unmarked content, its pseudonym secret, its registry.
    audience
        A ready audience instead of ``tlp``/``anonymize``.

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
    shared, table = prepare(findings, tlp=tlp, anonymize=anonymize, ws=ws, indicators=indicators, audience=audience)
    target = _target(out, fmt)
    if fmt == "json":
        save(shared.findings, target, indent=2)
        return [target]
    if fmt in ("html", "pdf", "md"):  # read by people: every organization, the top of each
        from .digest import digest

        doc = digest(shared.findings)
    else:
        doc = shared.to_dict()
    if fmt == "html":
        from .html import write_html

        write_html(doc, target)
    elif fmt == "pdf":
        from .pdf import write_pdf

        write_pdf(doc, target)
    elif fmt == "md":
        from .markdown import write_markdown

        write_markdown(doc, target)
    elif fmt == "stix":
        from ..store import atomic_write_json
        from .stix import to_stix_bundle

        atomic_write_json(target, to_stix_bundle(doc, indicators=table))
    elif fmt == "misp":
        from .misp import write_misp

        write_misp(doc, target, indicators=table)
    elif fmt == "zeek-intel":
        from .zeek_intel import write_zeek_intel

        write_zeek_intel(doc, target, indicators=table)
    else:
        from .suricata import write_rules

        write_rules(doc, target, indicators=table)
    return [target]
