"""The flow store: a workspace directory of day-partitioned parquet parts, their indicator
index, and the manifest that says which parts are committed.

Modules:

- :mod:`~sightline.store.workspace` -- the workspace directory, its manifest and writer lock,
  atomic file writes;
- :mod:`~sightline.store.layout` -- what a part looks like on disk (row order, encodings,
  timestamp unit) and how it is read back as FLOW_SCHEMA;
- :mod:`~sightline.store.writer` -- :class:`FlowWriter` (stage one input's flows, commit them
  at once) and the locality-sorted part writer;
- :mod:`~sightline.store.index` -- the per-part indicator index and the candidate flows of a hunt;
- :mod:`~sightline.store.compact` -- merging a day's parts into one.

Public API::

    Workspace(root) / DEFAULT_WORKSPACE
    atomic_write_bytes / atomic_write_chunks / atomic_write_text / atomic_write_json / atomic_write_parquet
    FlowWriter(ws, sha256, source_file, fmt)
    read_parts(paths, columns=None) -> pa.Table           # committed parts as FLOW_SCHEMA
    flows_table_from_columns(columns, n) -> pa.Table
    candidate_flows(ws, files, indicators, mode, columns) -> pa.Table | None
    flows_for_addresses(engine, ws, files) -> flows_for(view, ips, columns)

Everything else is reached through its module: compaction is ``store.compact.compact(ws)``
(the module keeps its name: no function shadows it), index internals are in ``store.index``,
encodings and sort runs in ``store.layout`` and ``store.writer``.
"""

from .index import candidate_flows, flows_for_addresses
from .layout import flows_table_from_columns, read_parts
from .workspace import (
    DEFAULT_WORKSPACE,
    Workspace,
    atomic_write_bytes,
    atomic_write_chunks,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
)
from .writer import FlowWriter

__all__ = [
    "DEFAULT_WORKSPACE",
    "FlowWriter",
    "Workspace",
    "atomic_write_bytes",
    "atomic_write_chunks",
    "atomic_write_json",
    "atomic_write_parquet",
    "atomic_write_text",
    "candidate_flows",
    "flows_for_addresses",
    "flows_table_from_columns",
    "read_parts",
]
