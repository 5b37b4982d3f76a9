"""sightline: find the victims of a threat actor's campaign in network telemetry.

Pipeline stages live in one package each: ``ingest``, ``intel``, ``enrich``, ``detect``,
``assess``, ``report``, ``exposure``, ``serve``, ``engines``.  Stages pass Arrow tables or
engine relations, never Python rows.
"""

__version__ = "0.1.0"  # the only place the version is written (pyproject.toml reads it)

__all__ = ["__version__"]
