"""The engine seam: everything engine-specific stays behind this protocol.

Detections are written once, as SQL in sightline's dialect (DuckDB's, restricted to what
sqlglot can transpile to Spark SQL), and run by whichever engine the user picked.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Engine(Protocol):
    name: str
    in_process: bool
    """True when the engine's work runs in this process (DuckDB): what Python reads here is
    read by the engine anyway, so readers tuned for it (the indicator index's row-group reads)
    may feed it tables.  False for a cluster engine (Spark): everything that grows with the
    store is read by the engine itself, where its executors run."""

    def register_table(self, name: str, table: pa.Table) -> None:
        """Expose an Arrow table as a view called ``name``."""

    def register_parquet(
        self, name: str, files: list[str], schema: pa.Schema | None = None, *, file_column: str | None = None
    ) -> None:
        """Expose parquet files as a view called ``name`` (an empty list gives an empty view of ``schema``).

        ``files`` are local paths or URIs the engine's readers understand (``s3a://``,
        ``hdfs://``); ``file_column`` adds a column holding each row's file (as the engine
        names it: a path or URI whose last component is the file's name)."""

    def execute(self, sql: str) -> None:
        """Run a statement (e.g. ``CREATE TEMP TABLE x AS ...``) without fetching a result."""

    def query(self, sql: str) -> pa.Table:
        """Run a query and return its result as an Arrow table."""

    def release(self, *names: str) -> None:
        """Forget temporary tables no later step reads, so their memory serves the next ones."""

    def fit_memory(self) -> None:
        """Leave the process's memory to what Python holds now (engines in this process only)."""

    def close(self) -> None: ...


__all__ = ["Engine"]
