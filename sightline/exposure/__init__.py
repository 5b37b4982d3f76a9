"""Edge-device exposure: which internet-facing appliances carry the holes the actor uses.

Pipeline: scans (nmap XML, masscan, Shodan/Censys JSON) -> services table with canonical
product ids (:mod:`.cpe`) -> curated CVE version ranges (``data/exposure/cve_ranges.json``)
-> CISA KEV catalog (:mod:`.kev`) -> joined with the hunt's actor activity and the org
registry (:mod:`.assess`) -> findings.json ``exposure`` list and CSV for patch tickets.

Public API::

    load_scans(paths) -> ScanLoad                 read and normalize scans, quarantine bad input
    store_services(ws, table) / read_services(ws) <ws>/exposure/services.parquet
    load_kev(ws=None) -> pa.Table                 workspace catalog if updated, else bundled
    update_kev(ws, file=..., url=...)             validated atomic replace
    assess_exposure(services, kev, activity=None, orgs=None, actor_cves=()) -> list[dict]
    to_csv(entries, path)                         injection-safe CSV
"""

from __future__ import annotations

from .assess import (
    ACTIVITY_SCHEMA,
    activity_from_findings,
    assess_exposure,
    cves_from_intel,
    exposure_section,
    load_cve_ranges,
    read_actor_cves,
    unranged_cves,
)
from .cpe import normalize_product
from .export import to_csv
from .kev import KEV_SCHEMA, load_kev, update_kev
from .scans import SERVICE_SCHEMA, ScanLoad, load_scans
from .store import read_services, store_services
from .versions import in_range, version_key

__all__ = [
    "ACTIVITY_SCHEMA",
    "KEV_SCHEMA",
    "SERVICE_SCHEMA",
    "ScanLoad",
    "activity_from_findings",
    "assess_exposure",
    "cves_from_intel",
    "exposure_section",
    "in_range",
    "load_cve_ranges",
    "load_kev",
    "load_scans",
    "normalize_product",
    "read_actor_cves",
    "read_services",
    "store_services",
    "to_csv",
    "unranged_cves",
    "update_kev",
    "version_key",
]
