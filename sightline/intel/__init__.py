"""Threat intelligence in: STIX 2.1, MISP, CSV/TSV tables, plain lists, TAXII 2.1.

Public API::

    load = load_intel_files([Path("bundle.json"), Path("iocs.csv")])
    load.table      # pa.Table, INDICATOR_SCHEMA
    load.report     # list[SourceReport]: read / loaded / skipped (with reasons) per source
    load.actor_cves # CVEs linked to the actor (STIX exploits -> vulnerability)
    add_to_workspace(ws, load)   # upsert by indicator_id; revocation marks rows revoked
    read_indicators(ws)          # active, non-revoked indicators
    pull_misp_feed(ws, url_or_dir, include_non_ids=False)  # MISP feed, incremental by event

``load_intel_files`` takes files, directories (a MISP feed directory too) and globs; with
``skip_bad_files`` a file it cannot use is listed in ``load.refused`` with its reason instead
of raising.  ``include_non_ids`` loads MISP ``to_ids = false`` attributes.

Defaults: confidence 50 and TLP amber when a source states none (``model.DEFAULT_*``).
"""

from __future__ import annotations

from .feed import pull_misp_feed
from .loader import load_documents, load_intel_files
from .model import DEFAULT_CONFIDENCE, DEFAULT_TLP, IntelLoad, Skip, SourceReport
from .store import actor_cves, add_to_workspace, intel_status, read_indicators

__all__ = [
    "load_intel_files",
    "load_documents",
    "pull_misp_feed",
    "add_to_workspace",
    "read_indicators",
    "intel_status",
    "actor_cves",
    "IntelLoad",
    "SourceReport",
    "Skip",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_TLP",
]
