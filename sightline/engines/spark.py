"""Spark engine: the same detection SQL, transpiled from sightline's dialect with sqlglot.

Detections are written once in DuckDB's dialect (:mod:`sightline.detect.sql`).  This engine
transpiles each statement with sqlglot (``read="duckdb", write="spark"``) and applies the few
rewrites sqlglot does not do by itself (see :func:`to_spark_sql`).  Arrow tables and parquet
files become temp views; ``CREATE TEMP TABLE x AS ...`` becomes a cached, eagerly materialized
temp view so later statements do not recompute it.

Configuration
-------------
- master: ``master=`` argument, else env ``SIGHTLINE_SPARK_MASTER``, else ``local[2]``.
- any Spark setting: ``conf={"spark.executor.memory": "8g"}`` or env ``SIGHTLINE_SPARK_CONF``
  (``key=value`` pairs separated by ``;``).  Under ``spark-submit`` the active session (and
  its master / config) is reused.
- where executors read the store: files are handed to Spark as URIs.  A URI stays as it is
  (``s3a://``, ``hdfs://``, ``abfs://``); a local path becomes ``file://`` (never resolved
  against the cluster's default file system), unless env ``SIGHTLINE_SPARK_PATH_MAP``
  (``/local/prefix=s3a://bucket/prefix``, several separated by ``;``) says where executors
  find that directory.

Executors only see what is shipped to them or stored where they can read it: the engine is
not :attr:`in_process`, so callers hand it files and small tables, never flows read in the
driver.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pyarrow as pa

from ..core.settings import settings
from ..errors import ConfigError, EngineError

try:
    import sqlglot
    from sqlglot import exp
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(f"sqlglot is needed by the spark engine ({e})") from e

try:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(f"pyspark is needed by the spark engine ({e})") from e

DEFAULT_MASTER = "local[2]"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(//|/)")

_BASE_CONF = {
    # Timestamps are UTC everywhere in sightline (CAST(ts AS DATE) must give the UTC day).
    "spark.sql.session.timeZone": "UTC",
    # Small jobs on few cores: the default 200 shuffle partitions cost more than they bring.
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.adaptive.enabled": "true",
    # Splits of the store's scans: Spark's default (128 MB, at least one per core) gives 3 tasks
    # for 2 cores over 280 MB of parts, one core idle for the last third of every scan; 32 MB
    # splits (whole row groups) keep every core busy to the end.
    "spark.sql.files.maxPartitionBytes": "32m",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}


def _conf_from_env() -> dict[str, str]:
    raw = settings().spark_conf
    out: dict[str, str] = {}
    for item in raw.split(";"):
        if not item.strip():
            continue
        if "=" not in item:
            raise ConfigError(
                f"bad SIGHTLINE_SPARK_CONF item {item!r}",
                hint="write key=value pairs separated by ';', e.g. spark.executor.memory=8g",
            )
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _path_map() -> list[tuple[str, str]]:
    out = []
    for item in settings().spark_path_map.split(";"):
        if not item.strip():
            continue
        local, sep, uri = item.partition("=")
        if not sep or not local.strip() or not uri.strip():
            raise ConfigError(
                f"bad SIGHTLINE_SPARK_PATH_MAP item {item!r}",
                hint="write /local/prefix=scheme://where/executors/read pairs separated by ';'",
            )
        out.append((os.path.abspath(local.strip()).rstrip("/"), uri.strip().rstrip("/")))
    return sorted(out, key=lambda m: -len(m[0]))  # the longest prefix wins


def spark_path(path: str, mapping: list[tuple[str, str]] | None = None) -> str:
    """The URI Spark's executors read ``path`` at (see the module's configuration notes)."""
    if _URI.match(path):
        return path
    p = os.path.abspath(path)
    for local, uri in _path_map() if mapping is None else mapping:
        if p == local or p.startswith(local + "/"):
            return uri + p[len(local) :]
    return "file://" + p  # as Hadoop reads it: no percent-encoding


def _rewrite(node: exp.Expression) -> exp.Expression:
    """Per-dialect rewrites sqlglot leaves to us (DuckDB function -> Spark twin)."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "epoch_us":
        return exp.Anonymous(this="unix_micros", expressions=node.expressions)
    if isinstance(node, exp.RegexpReplace):
        # DuckDB writes back-references as \1, Java regex (Spark) as $1
        rep = node.args.get("replacement")
        if isinstance(rep, exp.Literal) and rep.is_string and "\\" in rep.this:
            node = node.copy()
            node.set("replacement", exp.Literal.string(re.sub(r"\\(\d)", r"$\1", rep.this)))
        return node
    if isinstance(node, (exp.PercentileCont, exp.Quantile)):
        # DuckDB quantile_cont (linear interpolation) == Spark's exact percentile()
        q = node.args.get("expression") or node.args.get("quantile")
        return exp.Anonymous(this="percentile", expressions=[node.this, q])
    return node


def to_spark_sql(sql: str) -> tuple[str | None, str]:
    """Transpile one statement.

    Returns
    -------
    (view, select)
        ``view`` is the temp table name for ``CREATE [OR REPLACE] TEMP TABLE view AS select``
        (``None`` for a plain query) and ``select`` the Spark SQL text to run.
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as e:
        raise EngineError(f"cannot parse detection SQL: {e}") from e
    view = None
    if isinstance(tree, exp.Delete):
        # Temp views are immutable: DELETE FROM t WHERE c  ->  t := SELECT * FROM t WHERE NOT c
        view = tree.this.name
        cond = tree.args["where"].this if tree.args.get("where") else exp.false()
        exists = isinstance(cond, exp.Exists) or (isinstance(cond, exp.Not) and isinstance(cond.this, exp.Exists))
        keep = exp.not_(cond if exists else exp.func("coalesce", cond, exp.false()))
        tree = exp.select("*").from_(view).where(keep)
    elif isinstance(tree, exp.Create):
        target = tree.this
        view = (target.this if isinstance(target, exp.Schema) else target).name
        tree = tree.expression
    tree = tree.transform(_rewrite)
    return view, tree.sql(dialect="spark")


def _spark_type(t: pa.DataType) -> T.DataType:
    if pa.types.is_timestamp(t):
        return T.TimestampType()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return T.StringType()
    if pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_large_binary(t):
        return T.BinaryType()
    if pa.types.is_boolean(t):
        return T.BooleanType()
    if pa.types.is_floating(t):
        return T.DoubleType()
    if pa.types.is_integer(t):
        # uint32 (IPv4) does not fit Spark's int; Spark reads parquet UINT32 as long too.
        return T.IntegerType() if t in (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16()) else T.LongType()
    if pa.types.is_date(t):
        return T.DateType()
    raise EngineError(f"arrow type {t} has no spark mapping in sightline")


def spark_compatible(table: pa.Table) -> pa.Table:
    """Cast an Arrow table to the types Spark holds (uint32 -> int64, fixed binary -> binary)."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_integer(t) and t not in (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16()):
            t = pa.int64()
        elif pa.types.is_integer(t):
            t = pa.int32()
        elif pa.types.is_fixed_size_binary(t) or pa.types.is_large_binary(t):
            t = pa.binary()
        elif pa.types.is_large_string(t):
            t = pa.string()
        elif pa.types.is_floating(t):
            t = pa.float64()
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))


class SparkEngine:
    """:class:`~sightline.engines.base.Engine` on a PySpark session."""

    name = "spark"
    in_process = False

    def __init__(
        self,
        *,
        master: str | None = None,
        conf: dict[str, str] | None = None,
        app_name: str = "sightline",
        **_ignored: Any,
    ) -> None:
        active = SparkSession.getActiveSession()
        if active is not None and master is None:
            self.spark = active  # under spark-submit: master and config come from there
        else:
            url = master or settings().spark_master or DEFAULT_MASTER
            base = dict(_BASE_CONF)
            if url.startswith("local"):
                # one process: keep Spark on the loopback interface
                os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            else:
                # executors on other hosts connect back to the driver: let Spark (or
                # SPARK_LOCAL_IP / spark.driver.host) pick the address they can reach
                base = {k: v for k, v in base.items() if not k.startswith("spark.driver.")}
            b = SparkSession.builder.appName(app_name).master(url)
            for k, v in {**base, **_conf_from_env(), **(conf or {})}.items():
                b = b.config(k, v)
            try:
                self.spark = b.getOrCreate()
            except Exception as e:
                raise EngineError(
                    f"could not start Spark: {e}",
                    hint="check that Java 17+ is installed and SPARK_LOCAL_IP is reachable",
                ) from e
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        self._cached: dict[str, DataFrame] = {}

    def _replace(self, name: str, df: DataFrame) -> None:
        old = self._cached.pop(name, None)
        df.createOrReplaceTempView(name)
        self._cached[name] = df
        if old is not None:
            old.unpersist()

    def register_table(self, name: str, table: pa.Table) -> None:
        table = spark_compatible(table)
        schema = T.StructType([T.StructField(f.name, _spark_type(f.type), True) for f in table.schema])
        if table.num_rows == 0:
            df = self.spark.createDataFrame([], schema)
        else:
            df = self.spark.createDataFrame(table)
        self._replace(name, df)

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
        mapping = _path_map()
        files = [spark_path(f, mapping) for f in files]
        df = self.spark.read.parquet(*files)
        if schema is not None:
            # Spark takes the columns of one file; a column some files were written without
            # (the flow store's ``history``) is declared, so the files that have it give it and
            # the others null
            missing = [f for f in schema if f.name not in df.columns]
            if missing:
                full = T.StructType(
                    df.schema.fields + [T.StructField(f.name, _spark_type(f.type), True) for f in missing]
                )
                df = self.spark.read.schema(full).parquet(*files)
        if file_column:
            df = df.withColumn(file_column, F.col("_metadata.file_path"))
        self._replace(name, df)

    def execute(self, sql: str) -> None:
        view, text = to_spark_sql(sql)
        try:
            df = self.spark.sql(text)
            if view is not None:
                # A temp table is materialized once: later statements read it several times.
                df = df.localCheckpoint(eager=True)
                self._replace(view, df)
            else:
                df.collect()
        except EngineError:
            raise
        except Exception as e:
            raise EngineError(f"spark query failed: {str(e).splitlines()[0] if str(e) else e}") from e

    def query(self, sql: str) -> pa.Table:
        view, text = to_spark_sql(sql)
        if view is not None:
            self.execute(sql)
            text = f"SELECT * FROM {view}"
        try:
            return self.spark.sql(text).toArrow()
        except Exception as e:
            raise EngineError(f"spark query failed: {str(e).splitlines()[0] if str(e) else e}") from e

    def fit_memory(self) -> None:
        """Spark's memory is the JVM's (driver and executors), sized by Spark configuration."""

    def release(self, *names: str) -> None:
        for name in names:
            df = self._cached.pop(name, None)
            if df is None:
                continue
            try:
                self.spark.catalog.dropTempView(name)
                df.unpersist()
            except Exception:
                pass

    def close(self) -> None:
        # The session is shared (tests, spark-submit); only drop what this engine created.
        self.release(*list(self._cached))


__all__ = ["SparkEngine", "DEFAULT_MASTER", "spark_compatible", "spark_path", "to_spark_sql"]
