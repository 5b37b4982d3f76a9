"""Runtime settings from the environment: the one module that reads ``SIGHTLINE_*`` variables.

``sightline.toml`` and its ``SIGHTLINE_<SECTION>__<KEY>`` overrides are read by
:mod:`sightline.config`; everything else sightline takes from the environment -- tuning knobs of
the store and the engines, tool paths, and secrets (which are *only* ever taken from the
environment, never from a file sightline reads) -- is read here, through :func:`settings`.
Command-line options that have an environment variable (``--workspace``, ``--engine``,
``--config``, ``--spark-master``, ``--user``, ``--secure-cookies``) are declared with their option in
the CLI.
:data:`VARIABLES` lists them all; the README's table is checked against it.

Each property reads its variable when asked, so a knob read once at import (the row-group
size of new parts, the index cache) keeps that value for the process, and one read per call
(the retire grace of compaction, the index mode of a hunt) follows the environment.  A numeric
knob that is not a number falls back to its default with a warning instead of failing every
command.

Public API::

    settings(env=None) -> Settings        # a typed view of the environment
    VARIABLES                             # (name, default, what) of every variable
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("sightline")


@dataclass(frozen=True)
class Variable:
    """One environment variable sightline reads."""

    name: str
    default: str
    what: str


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "SIGHTLINE_CONFIG",
        "(none)",
        "`sightline.toml` to use when `--config` is not given "
        "(before `<workspace>/sightline.toml`, `./sightline.toml`)",
    ),
    Variable(
        "SIGHTLINE_<SECTION>__<KEY>",
        "(none)",
        "override one `sightline.toml` key, e.g. `SIGHTLINE_DETECTORS__BEACON__ENABLED=false`",
    ),
    Variable("SIGHTLINE_WORKSPACE", "`sightline-data`", "`--workspace` of every command"),
    Variable("SIGHTLINE_ENGINE", "`duckdb`", "`--engine` of every command"),
    Variable(
        "SIGHTLINE_LOG", "`WARNING`", "log level (`DEBUG`, `INFO`, `WARNING`, `ERROR`); `--verbose` means `DEBUG`"
    ),
    Variable(
        "SIGHTLINE_ROW_GROUP_ROWS",
        "16384",
        "rows per row group of new flow parts: 4096 favours retro-hunts through the index, 65536 full scans",
    ),
    Variable(
        "SIGHTLINE_SORT_PARTS",
        "1",
        "`0`: commit flow parts in arrival order (no locality sort: the index then rules out little)",
    ),
    Variable(
        "SIGHTLINE_INDEX", "`auto`", "indicator index of hunts: `auto` (when it rules out half the store), `on`, `off`"
    ),
    Variable("SIGHTLINE_INDEX_CACHE_MB", "256", "part indexes a hunt keeps in memory"),
    Variable(
        "SIGHTLINE_RETIRE_GRACE_S", "3600", "seconds parts replaced by compaction stay readable for running hunts"
    ),
    Variable("SIGHTLINE_MEMORY_LIMIT", "`2GB`", "DuckDB memory limit (it spills to disk beyond it)"),
    Variable(
        "SIGHTLINE_SPARK_MASTER",
        "`local[2]`",
        "`--spark-master` of every command: Spark master of `--engine spark` (not under `spark-submit`)",
    ),
    Variable("SIGHTLINE_SPARK_CONF", "(none)", "Spark settings, `key=value;key=value`"),
    Variable(
        "SIGHTLINE_SPARK_PATH_MAP",
        "(none)",
        "where Spark executors read local store paths: `/local/prefix=s3a://bucket/prefix;...` (else `file://`)",
    ),
    Variable("SIGHTLINE_CHROMIUM", "first `chromium` on `PATH`", "the Chromium that prints PDF reports"),
    Variable("SIGHTLINE_SECURE_COOKIES", "`false`", "`--secure-cookies` of `sightline serve` (behind HTTPS)"),
    Variable(
        "SIGHTLINE_TRUSTED_PROXIES",
        "(none)",
        "`--trusted-proxy` of `sightline serve` (reverse proxies whose X-Forwarded-For names the client)",
    ),
    Variable("SIGHTLINE_SECRET", "kept in the workspace", "**secret**: key that signs dashboard sessions"),
    Variable(
        "SIGHTLINE_PSEUDONYM_SECRET",
        "kept in the workspace",
        "**secret**: key of the victims' pseudonyms in shared reports",
    ),
    Variable("SIGHTLINE_TAXII_USER", "(none)", "`--user` of `sightline intel pull`"),
    Variable(
        "SIGHTLINE_TAXII_PASSWORD",
        "(none)",
        "**secret**: password of `sightline intel pull` (`--password-env` names another variable)",
    ),
)
"""Every environment variable sightline reads (documented in the README's table)."""


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        log.warning("%s=%r is not a number: using %s", name, raw, default)
        return default


class Settings:
    """A typed view of the environment (``os.environ`` unless given one)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env

    # --- the flow store ---------------------------------------------------------------------
    @property
    def row_group_rows(self) -> int:
        """``SIGHTLINE_ROW_GROUP_ROWS``: rows per row group of new flow parts (at least 1)."""
        return max(1, int(_number(self._env, "SIGHTLINE_ROW_GROUP_ROWS", 16384)))

    @property
    def sort_parts(self) -> bool:
        """``SIGHTLINE_SORT_PARTS``: flow parts are committed in locality order unless it is ``0``."""
        return self._env.get("SIGHTLINE_SORT_PARTS", "1") != "0"

    @property
    def index_mode(self) -> str:
        """``SIGHTLINE_INDEX``: ``auto``, ``on`` or ``off`` (as given; the caller lower-cases it)."""
        return self._env.get("SIGHTLINE_INDEX") or "auto"

    @property
    def index_cache_bytes(self) -> int:
        """``SIGHTLINE_INDEX_CACHE_MB`` in bytes."""
        return int(_number(self._env, "SIGHTLINE_INDEX_CACHE_MB", 256) * (1 << 20))

    @property
    def retire_grace_s(self) -> float:
        """``SIGHTLINE_RETIRE_GRACE_S``: how long parts replaced by compaction stay on disk."""
        return _number(self._env, "SIGHTLINE_RETIRE_GRACE_S", 3600.0)

    # --- engines and tools ------------------------------------------------------------------
    @property
    def memory_limit(self) -> str:
        """``SIGHTLINE_MEMORY_LIMIT``: DuckDB's memory limit."""
        return self._env.get("SIGHTLINE_MEMORY_LIMIT", "2GB")

    @property
    def spark_master(self) -> str | None:
        """``SIGHTLINE_SPARK_MASTER``, None when unset (the engine's default applies)."""
        return self._env.get("SIGHTLINE_SPARK_MASTER") or None

    @property
    def spark_conf(self) -> str:
        """``SIGHTLINE_SPARK_CONF``: ``key=value;key=value`` (parsed by the Spark engine)."""
        return self._env.get("SIGHTLINE_SPARK_CONF", "")

    @property
    def spark_path_map(self) -> str:
        """``SIGHTLINE_SPARK_PATH_MAP``: ``/local/prefix=uri;...`` (parsed by the Spark engine)."""
        return self._env.get("SIGHTLINE_SPARK_PATH_MAP", "")

    @property
    def chromium(self) -> str | None:
        """``SIGHTLINE_CHROMIUM``: the Chromium to print with, None when unset."""
        return self._env.get("SIGHTLINE_CHROMIUM") or None

    @property
    def log_level(self) -> str:
        """``SIGHTLINE_LOG``: the log level's name, upper-cased."""
        return self._env.get("SIGHTLINE_LOG", "WARNING").upper()

    # --- secrets: only ever from the environment -------------------------------------------
    def secret(self, name: str) -> str | None:
        """The secret held by the environment variable ``name`` (None when unset):
        ``SIGHTLINE_SECRET``, ``SIGHTLINE_PSEUDONYM_SECRET``, the TAXII password."""
        return self._env.get(name)


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings of this process (``os.environ``), or of ``env``."""
    return Settings(env)


__all__ = ["Settings", "VARIABLES", "Variable", "settings"]
