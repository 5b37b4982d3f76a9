"""Continuous hunting: follow telemetry and intel, hunt, alert sinks on changes (``sightline watch``)."""

from __future__ import annotations

from .alerts import Alert, SeenState, changes
from .service import STATE_FILE, JsonLogFormatter, Watcher, WatchOptions, is_live_name
from .sinks import Sink, SinkError, parse_sink, signature

__all__ = [
    "Alert",
    "SeenState",
    "changes",
    "Watcher",
    "WatchOptions",
    "JsonLogFormatter",
    "STATE_FILE",
    "is_live_name",
    "Sink",
    "SinkError",
    "parse_sink",
    "signature",
]
