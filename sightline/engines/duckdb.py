"""DuckDB engine: embedded, the default."""

from __future__ import annotations

import os
import tempfile

import duckdb
import pyarrow as pa

from ..core.settings import settings
from ..errors import EngineError

_BASE_BYTES = 256 << 20  # interpreter, libraries and Arrow pools before any data


def _size_bytes(text: str) -> int | None:
    """``2GB`` / ``1.5GiB`` / ``512MB`` -> bytes (None when not understood: the limit stays DuckDB's)."""
    import re

    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m:
        return None
    unit = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    if m.group(3) and m.group(3).lower() == "b" and m.group(2):
        unit = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2).upper()]
    return int(float(m.group(1)) * unit)


def _duck_type(t: pa.DataType) -> str:
    """DuckDB's name of a column type a stored file may lack (a null column stands in)."""
    for test, name in (
        (pa.types.is_string, "VARCHAR"),
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_floating, "DOUBLE"),
        (pa.types.is_binary, "BLOB"),
        (pa.types.is_fixed_size_binary, "BLOB"),
        (pa.types.is_timestamp, "TIMESTAMPTZ"),
    ):
        if test(t):
            return name
    if pa.types.is_integer(t):
        return {pa.uint32(): "UINTEGER", pa.int32(): "INTEGER"}.get(t, "BIGINT")
    raise EngineError(f"arrow type {t} has no DuckDB mapping in sightline")


class DuckDBEngine:
    name = "duckdb"
    in_process = True

    def __init__(
        self, *, threads: int | None = None, memory_limit: str | None = None, temp_dir: str | None = None
    ) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET autoinstall_known_extensions=false")
        self.con.execute("SET autoload_known_extensions=false")
        if threads:
            self.con.execute(f"SET threads={int(threads)}")
        limit = memory_limit or settings().memory_limit
        self.con.execute(f"SET memory_limit='{limit}'")
        self.limit_bytes = _size_bytes(limit)
        self.con.execute(f"SET temp_directory='{temp_dir or tempfile.gettempdir()}/sightline-duckdb-spill'")
        self.con.execute("SET preserve_insertion_order=false")
        self.con.execute("SET enable_progress_bar=false")  # sightline shows its own progress
        # one hunt reads the flow parts several times (match, baselines, pivoting): parse each
        # part's footer (thousands of small row groups) once per connection
        self.con.execute("SET parquet_metadata_cache=true")
        # the store is on a local disk: read-ahead of the next column chunks only costs there
        # (indicator match over 20M flows, interleaved: 30 -> 36 M flows/s with 4k-row groups, 41 -> 46
        # with 16k)
        self.con.execute("SET disable_parquet_prefetching=true")
        self.con.execute("SET TimeZone='UTC'")
        self._keep: dict[str, pa.Table] = {}

    def register_table(self, name: str, table: pa.Table) -> None:
        self._keep[name] = table
        self.con.register(name, table)

    def register_parquet(
        self, name: str, files: list[str], schema: pa.Schema | None = None, *, file_column: str | None = None
    ) -> None:
        if not files:
            if schema is None:
                raise EngineError(f"no files for {name} and no schema to make it empty")
            table = schema.empty_table()
            if file_column:
                table = table.append_column(file_column, pa.array([], pa.string()))
            self.register_table(name, table)
            return
        lst = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        fn = ", filename=true" if file_column else ""
        cols = f"* EXCLUDE (filename), filename AS {file_column}" if file_column else "*"
        if schema is None:
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {cols} FROM read_parquet([{lst}]{fn})")
            return
        # files written before a column joined the schema (the flow store's ``history``) lack
        # it: columns by name over all files, and null where no file has it (no measurable cost)
        src = f"read_parquet([{lst}], union_by_name=true{fn})"
        try:
            have = {r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
            extra = "".join(f", CAST(NULL AS {_duck_type(f.type)}) AS {f.name}" for f in schema if f.name not in have)
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {cols}{extra} FROM {src}")
        except duckdb.Error as e:
            raise EngineError(f"cannot read {name} files: {e}") from e

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

    def release(self, *names: str) -> None:
        for name in names:
            try:
                if self._keep.pop(name, None) is not None:
                    self.con.unregister(name)
                else:
                    self.con.execute(f"DROP TABLE IF EXISTS {name}")
            except duckdb.Error:  # a view over files: nothing held
                pass

    def fit_memory(self) -> None:
        """Shrink DuckDB's memory limit by what the rest of the process holds now (e.g. a large
        hunt's findings), so the process as a whole stays near the configured limit; DuckDB
        spills to disk past it.  Never below half the configured limit: RSS counts
        memory DuckDB freed but kept, so what Python holds is overestimated."""
        if self.limit_bytes is None:
            return
        try:
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            own = int(self.con.sql("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchall()[0][0])
        except (OSError, ValueError, duckdb.Error):
            return
        outside = max(0, rss - own - _BASE_BYTES)
        new = max(self.limit_bytes // 2, self.limit_bytes - outside)
        try:
            self.con.execute(f"SET memory_limit='{new // (1 << 20)}MiB'")
        except duckdb.Error:  # more is pinned than the new limit: keep the old one, never fail a hunt
            pass

    def close(self) -> None:
        self.con.close()


__all__ = ["DuckDBEngine"]
