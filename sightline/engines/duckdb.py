"""DuckDB engine: embedded, the default."""

from __future__ import annotations

import os
import tempfile

import duckdb
import pyarrow as pa

from ..errors import EngineError


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, *, threads: int | None = None, memory_limit: str | None = None, temp_dir: str | None = None) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET autoinstall_known_extensions=false")
        self.con.execute("SET autoload_known_extensions=false")
        if threads:
            self.con.execute(f"SET threads={int(threads)}")
        limit = memory_limit or os.environ.get("SIGHTLINE_MEMORY_LIMIT", "2GB")
        self.con.execute(f"SET memory_limit='{limit}'")
        self.con.execute(f"SET temp_directory='{temp_dir or tempfile.gettempdir()}/sightline-duckdb-spill'")
        self.con.execute("SET preserve_insertion_order=false")
        self.con.execute("SET enable_progress_bar=false")  # sightline shows its own progress
        self.con.execute("SET TimeZone='UTC'")
        self._keep: dict[str, pa.Table] = {}

    def register_table(self, name: str, table: pa.Table) -> None:
        self._keep[name] = table
        self.con.register(name, table)

    def register_parquet(self, name: str, files: list[str], schema: pa.Schema | None = None) -> None:
        if not files:
            if schema is None:
                raise EngineError(f"no files for {name} and no schema to make it empty")
            self.register_table(name, schema.empty_table())
            return
        lst = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{lst}])")

    def execute(self, sql: str) -> None:
        try:
            self.con.execute(sql)
        except duckdb.Error as e:
            raise EngineError(f"query failed: {e}") from e

    def query(self, sql: str) -> pa.Table:
        try:
            return self.con.sql(sql).to_arrow_table()
        except duckdb.Error as e:
            raise EngineError(f"query failed: {e}") from e

    def close(self) -> None:
        self.con.close()


__all__ = ["DuckDBEngine"]
