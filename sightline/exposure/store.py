"""Scanned services in the workspace: ``<ws>/exposure/services.parquet``.

Each ``sightline exposure`` run merges its services into the stored table: the newest
observation of an ``ip:port/proto`` replaces older ones (a re-scan after patching must clear
the old version), everything else is kept.  Writes are atomic under the workspace lock.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError
from ..store import Workspace, atomic_write_parquet
from .scans import SERVICE_SCHEMA


def services_path(ws: Workspace) -> Path:
    """Where the workspace keeps scanned services."""
    return ws.root / "exposure" / "services.parquet"


def read_services(ws: Workspace) -> pa.Table:
    """The stored services (:data:`SERVICE_SCHEMA`); empty when nothing was stored yet.

    Raises
    ------
    ConfigError
        The stored file exists but cannot be read.
    """
    path = services_path(ws)
    if not path.exists():
        return SERVICE_SCHEMA.empty_table()
    try:
        table = pq.read_table(path)
        for f in SERVICE_SCHEMA:  # a table stored by an older sightline lacks newer columns
            if f.name not in table.column_names:
                table = table.append_column(f, pa.nulls(table.num_rows, f.type))
        return table.select(SERVICE_SCHEMA.names).cast(SERVICE_SCHEMA)
    except (OSError, pa.ArrowInvalid, ValueError) as e:
        raise ConfigError(
            f"stored exposure services are unreadable: {e}",
            path=path,
            hint="delete the file and run `sightline exposure SCAN...` again",
        ) from e


_MERGE_SQL = """
    SELECT * EXCLUDE (rn) FROM (
        SELECT *, row_number() OVER (
            PARTITION BY ip, port, proto
            ORDER BY scanned_at DESC NULLS LAST, src DESC) AS rn
        FROM (SELECT *, 0 AS src FROM old_t UNION ALL BY NAME SELECT *, 1 AS src FROM new_t)
    ) WHERE rn = 1
    ORDER BY ip, port, proto
"""


def store_services(ws: Workspace, table: pa.Table) -> pa.Table:
    """Merge ``table`` into the workspace's services and return the stored result.

    Parameters
    ----------
    ws
        The workspace.
    table
        Services (:data:`SERVICE_SCHEMA`), e.g. ``load_scans(...).services``.

    Returns
    -------
    pyarrow.Table
        All stored services after the merge (newest observation per ip/port/proto; a tie
        goes to the new table).
    """
    new = table.select(SERVICE_SCHEMA.names).cast(SERVICE_SCHEMA)
    with ws.lock():
        old = read_services(ws)
        con = duckdb.connect()
        try:
            con.register("old_t", old)
            con.register("new_t", new)
            merged = con.sql(_MERGE_SQL).to_arrow_table()
        finally:
            con.close()
        merged = merged.drop_columns(["src"]).select(SERVICE_SCHEMA.names).cast(SERVICE_SCHEMA)
        atomic_write_parquet(services_path(ws), merged)
    return merged


__all__ = ["services_path", "read_services", "store_services"]
