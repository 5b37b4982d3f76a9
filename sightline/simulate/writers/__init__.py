"""Output formats of the simulator: a registry of writers, one module per format.

A writer receives Arrow tables in :data:`sightline.schema.FLOW_SCHEMA` plus a ``corrupt``
column (uint8: 0 fine, 1 write the record truncated, 2 write it with a garbled field) and
appends them to one file.  The simulator opens one writer per sensor and day.  To add a
format, write a module with a class following :class:`FlowWriter` and call
:func:`register_writer` at import; list the module in ``_BUILTIN``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa


class FlowWriter(Protocol):
    """Appends flow tables to one output file."""

    path: Path

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class WriterSpec:
    """A registered output format."""

    name: str
    suffix: str  # file name suffix, e.g. ``log`` or ``json``
    open: Callable[[Path, dict], FlowWriter]  # (path, context) -> writer
    description: str = ""


_WRITERS: dict[str, WriterSpec] = {}
_BUILTIN = ("zeek",)


def register_writer(spec: WriterSpec) -> None:
    _WRITERS[spec.name] = spec


_EXTRA = ("sightline.simulate.netflow_writer", "sightline.simulate.suricata_writer")
"""Writers that live outside this package (NetFlow v9 / IPFIX export pcap, Suricata eve.json)."""


def _load() -> None:
    for mod in _BUILTIN:
        importlib.import_module(f"{__name__}.{mod}")
    for mod in _EXTRA:
        importlib.import_module(mod)


def writers() -> dict[str, WriterSpec]:
    """All registered output formats by name."""
    _load()
    return dict(_WRITERS)


def get_writer(name: str) -> WriterSpec:
    """The writer for ``name``; raises ``KeyError`` listing the known names."""
    known = writers()
    if name not in known:
        raise KeyError(f"unknown output format {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


__all__ = ["FlowWriter", "WriterSpec", "register_writer", "writers", "get_writer"]
