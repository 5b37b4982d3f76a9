"""The CISA Known Exploited Vulnerabilities catalog: bundled snapshot, workspace copy, update.

sightline ships a dated snapshot (``sightline/data/kev/``, CC0).  ``sightline kev update``
puts a newer catalog into the workspace (``<ws>/kev/known_exploited_vulnerabilities.json``);
:func:`load_kev` prefers that copy.  A new catalog is validated against CISA's JSON schema
and basic sanity checks *before* it replaces the old one, and the replace is atomic, so a
bad download never leaves the workspace without a usable catalog.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from ..errors import InputError
from ..jsonschemas import load as load_jsonschema
from ..store import Workspace, atomic_write_bytes

KEV_URL = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
KEV_FILENAME = "known_exploited_vulnerabilities.json"
MAX_KEV_BYTES = 64 * 1024 * 1024
"""A catalog larger than this is refused (the 2025 catalog is ~1.3 MB)."""

KEV_SCHEMA = pa.schema(
    [
        pa.field("cve", pa.string(), nullable=False),
        pa.field("vendor_project", pa.string()),
        pa.field("product", pa.string()),
        pa.field("vulnerability_name", pa.string()),
        pa.field("date_added", pa.date32()),
        pa.field("due_date", pa.date32()),
        pa.field("known_ransomware", pa.bool_()),  # CISA "Known" -> True, "Unknown" -> False
        pa.field("short_description", pa.string()),
        pa.field("required_action", pa.string()),
    ]
)
"""One row per catalog entry.  Catalog version and release date are in the schema metadata."""


def _bundled_bytes(name: str) -> bytes:
    return resources.files("sightline").joinpath("data", "kev", name).read_bytes()


def kev_path(ws: Workspace) -> Path:
    """Where the workspace keeps its own KEV catalog."""
    return ws.root / "kev" / KEV_FILENAME


def validate_kev(doc: Any, source: str = "<catalog>") -> None:
    """Check that ``doc`` is a usable KEV catalog.

    Raises
    ------
    InputError
        Not CISA's schema, no vulnerabilities, duplicate CVE ids, or ``count`` disagreeing
        with the list (a truncated download).
    """
    schema = json.loads(_bundled_bytes("known_exploited_vulnerabilities_schema.json"))
    jsonschema = load_jsonschema()
    try:
        jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise InputError(
            f"not a valid KEV catalog at {where}: {e.message}",
            path=source,
            hint="download the catalog again from CISA (known_exploited_vulnerabilities.json)",
        ) from e
    vulns = doc["vulnerabilities"]
    if not vulns:
        raise InputError(
            "KEV catalog lists no vulnerabilities",
            path=source,
            hint="refusing to replace the catalog with an empty one",
        )
    if doc["count"] != len(vulns):
        raise InputError(
            f"KEV catalog says count={doc['count']} but lists {len(vulns)} entries",
            path=source,
            hint="the download is probably truncated; fetch it again",
        )
    ids = [v["cveID"] for v in vulns]
    if len(set(ids)) != len(ids):
        raise InputError("KEV catalog lists a CVE twice", path=source, hint="fetch the catalog again")
    for i, v in enumerate(vulns):
        for key in ("cveID", "dateAdded", "dueDate"):
            if key not in v:
                raise InputError(f"KEV entry {i} has no {key}", path=source, position=i, hint="fetch the catalog again")


def _to_table(doc: dict[str, Any]) -> pa.Table:
    vulns = doc["vulnerabilities"]

    def col(key: str) -> list[Any]:
        return [v.get(key) for v in vulns]

    table = pa.table(
        {
            "cve": col("cveID"),
            "vendor_project": col("vendorProject"),
            "product": col("product"),
            "vulnerability_name": col("vulnerabilityName"),
            "date_added": pa.array(col("dateAdded"), pa.string()).cast(pa.date32()),
            "due_date": pa.array(col("dueDate"), pa.string()).cast(pa.date32()),
            "known_ransomware": [str(v.get("knownRansomwareCampaignUse", "")).lower() == "known" for v in vulns],
            "short_description": col("shortDescription"),
            "required_action": col("requiredAction"),
        },
        schema=KEV_SCHEMA,
    )
    meta = {
        "catalog_version": str(doc.get("catalogVersion", "")),
        "date_released": str(doc.get("dateReleased", "")),
    }
    return table.replace_schema_metadata(meta)


def load_kev(ws: Workspace | None = None) -> pa.Table:
    """The KEV catalog as a table (:data:`KEV_SCHEMA`).

    Parameters
    ----------
    ws
        Workspace whose updated copy to use; without one, or when the workspace has none,
        the bundled snapshot.

    Returns
    -------
    pyarrow.Table
        Schema metadata ``catalog_version``, ``date_released`` and ``origin`` (``bundled``
        or the workspace file path).
    """
    origin = "bundled"
    raw: bytes
    if ws is not None and kev_path(ws).exists():
        try:
            raw = kev_path(ws).read_bytes()
            origin = str(kev_path(ws))
        except OSError as e:
            raise InputError(
                f"cannot read the workspace KEV catalog: {e}",
                path=kev_path(ws),
                hint="run `sightline kev update` again",
            ) from e
    else:
        raw = _bundled_bytes(KEV_FILENAME)
    try:
        doc = json.loads(raw)
        table = _to_table(doc)
    except (ValueError, KeyError, TypeError, pa.ArrowInvalid) as e:
        raise InputError(
            f"KEV catalog is unreadable: {e}",
            path=origin,
            hint="run `sightline kev update --file PATH` with a good catalog",
        ) from e
    meta = dict(table.schema.metadata or {})
    meta[b"origin"] = origin.encode()
    return table.replace_schema_metadata(meta)


def update_kev(
    ws: Workspace,
    *,
    file: str | Path | None = None,
    url: str | None = None,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """Replace the workspace's KEV catalog with a new one, validated first.

    Parameters
    ----------
    ws
        The workspace.
    file, url
        Where the new catalog is; exactly one (``url`` defaults to CISA's feed when neither
        is given).
    client
        HTTP client to use (tests pass one with a local transport).

    Returns
    -------
    dict
        ``catalog_version``, ``date_released``, ``count``, ``previous_version``, ``path``.

    Raises
    ------
    InputError
        Unreadable file, download failure, or a catalog that fails validation; the old
        catalog is left untouched.
    """
    if file is not None and url is not None:
        raise InputError("give either --file or --url, not both", hint="pick one source")
    source: str
    if file is not None:
        source = str(file)
        try:
            raw = Path(file).read_bytes()
        except OSError as e:
            raise InputError(f"cannot read KEV file: {e.strerror or e}", path=file, hint="check the path") from e
    else:
        source = url or KEV_URL
        own = client is None
        http = client or httpx.Client(timeout=60.0, follow_redirects=True)
        try:
            resp = http.get(source)
            resp.raise_for_status()
            raw = resp.content
        except httpx.HTTPError as e:
            raise InputError(
                f"cannot download the KEV catalog: {e}",
                path=source,
                hint="check the network, or download it elsewhere and use --file",
            ) from e
        finally:
            if own:
                http.close()
    if len(raw) > MAX_KEV_BYTES:
        raise InputError(
            f"KEV catalog is {len(raw)} bytes, over the {MAX_KEV_BYTES} limit",
            path=source,
            hint="this is not the KEV catalog",
        )
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise InputError(
            f"KEV catalog is not JSON: {e}", path=source, hint="download known_exploited_vulnerabilities.json again"
        ) from e
    validate_kev(doc, source)
    previous = None
    try:
        previous = (load_kev(ws).schema.metadata or {}).get(b"catalog_version", b"").decode() or None
    except InputError:
        previous = None  # a broken old copy is exactly what an update should fix
    target = kev_path(ws)
    atomic_write_bytes(target, raw)
    return {
        "catalog_version": doc.get("catalogVersion"),
        "date_released": doc.get("dateReleased"),
        "count": len(doc["vulnerabilities"]),
        "previous_version": previous,
        "path": str(target),
    }


__all__ = ["KEV_URL", "KEV_SCHEMA", "MAX_KEV_BYTES", "kev_path", "validate_kev", "load_kev", "update_kev"]
