"""Package faces: what a package exports resolves, and a module that moved left no second path
to the same thing behind."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["sightline.store", "sightline.ingest"])
def test_every_exported_name_resolves(package: str) -> None:
    mod = importlib.import_module(package)
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing and len(set(mod.__all__)) == len(mod.__all__)


@pytest.mark.parametrize(
    "old", ["sightline.index", "sightline.workspace", "sightline.ingest.store", "sightline.ingest.compact"]
)
def test_moved_modules_leave_no_alias(old: str) -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)
