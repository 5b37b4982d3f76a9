"""jsonschema, loaded without the one optional format library that is slow to import.

jsonschema imports every optional format-checking library it finds installed.  One of them,
``rfc3987_syntax`` (the ``iri`` / ``iri-reference`` formats), compiles its grammars at import:
about 1 s added to every command that validates findings or a KEV catalog.  Neither schema
sightline checks uses those formats, so that import is made to fail the first time jsonschema
is loaded through :func:`load`; the library stays importable for anyone else.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

_SLOW = "rfc3987_syntax"


def load() -> ModuleType:
    """The ``jsonschema`` module."""
    if "jsonschema" not in sys.modules and _SLOW not in sys.modules:
        sys.modules[_SLOW] = None  # type: ignore[assignment]  # "import rfc3987_syntax" fails fast
        try:
            return importlib.import_module("jsonschema")
        finally:
            del sys.modules[_SLOW]
    return importlib.import_module("jsonschema")


__all__ = ["load"]
