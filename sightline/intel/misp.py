"""MISP events and feeds (JSON) -> indicator rows (placeholder, completed below)."""

from __future__ import annotations

from typing import Any

from .model import RowBuilder


class MispResult:
    def __init__(self) -> None:
        self.actors: set[str] = set()
        self.revoked_ids: set[str] = set()
        self.replaced_ids: set[str] = set()


def looks_like_misp(data: Any) -> bool:
    if isinstance(data, dict):
        return "Event" in data or "Attribute" in data or ("response" in data and "objects" not in data)
    return False


def read_misp(data: Any, b: RowBuilder) -> MispResult:
    raise NotImplementedError


__all__ = ["looks_like_misp", "read_misp", "MispResult"]
