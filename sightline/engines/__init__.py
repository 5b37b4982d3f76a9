"""Query engines behind one small interface (:class:`Engine`).

``get_engine("duckdb")`` (default, embedded) or ``get_engine("spark")``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import Engine

ENGINES = ("duckdb", "spark")


def get_engine(name: str = "duckdb", **opts: Any) -> Engine:
    if name == "duckdb":
        from .duckdb import DuckDBEngine

        return DuckDBEngine(**opts)
    if name == "spark":
        try:
            from .spark import SparkEngine
        except ImportError as e:
            raise ConfigError(
                f"the spark engine is not available: {e}",
                hint="pip install 'sightline[spark]' and make sure Java 17+ is installed",
            ) from e
        return SparkEngine(**opts)
    raise ConfigError(f"unknown engine {name!r}", hint=f"use one of: {', '.join(ENGINES)}")


__all__ = ["Engine", "ENGINES", "get_engine"]
