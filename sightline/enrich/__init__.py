"""Enrichment: IP -> organization (registry first, then ASN), ASN, country, sector.

Public API: :func:`load_orgs_csv`, :func:`store_orgs`, :func:`read_orgs`; geo tables in
:mod:`sightline.enrich.geo`, the sector classifier in :mod:`sightline.enrich.sector`,
shared-infrastructure marks in :mod:`sightline.enrich.shared_infra`.
"""

from .orgs import OrgLoad, load_orgs_csv, read_orgs, store_orgs

__all__ = ["OrgLoad", "load_orgs_csv", "store_orgs", "read_orgs"]
