"""The Traffic Light Protocol: one parser, one order, one rule for unmarked content.

Every TLP decision in sightline goes through this module: intel loading, the findings'
sharing policy (:mod:`sightline.findings.share`), every report format, ``notify``,
``export``, the dashboard, the API and user clearances.

- Order (TLP 2.0): CLEAR (= TLP 1.0 WHITE) < GREEN < AMBER < AMBER+STRICT < RED.
- :func:`parse_tlp` reads what people and feeds write (``TLP:AMBER``, ``white``,
  ``amber+strict``, ``amber-strict``, ``amber_strict``, ``amberstrict``, ``tlp-red``, ...)
  and refuses anything else: it is for input that must be a level (a CLI option, a user's
  clearance, a feed's marking).
- :func:`marking` reads a marking already attached to content.  Content nobody marked gets
  the workspace's default (AMBER unless configured: fail closed); a marking that is not a
  level counts as RED, so a typo never widens who may see something.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable

from ..errors import ConfigError

__all__ = [
    "TLP",
    "TLPError",
    "LEVELS",
    "DEFAULT_TLP",
    "parse_tlp",
    "marking",
    "most_restrictive",
    "marking_label",
    "strictest_label",
]


class TLPError(ConfigError):
    """A value that is not a TLP level where one is required."""


class TLP(enum.IntEnum):
    """TLP 2.0 levels, ordered by restriction (compare with ``<``)."""

    CLEAR = 0
    GREEN = 1
    AMBER = 2
    AMBER_STRICT = 3
    RED = 4

    @property
    def label(self) -> str:
        """Lower-case TLP 2.0 name as written in findings (``amber+strict``)."""
        return _LABELS[self]

    @property
    def title(self) -> str:
        """``TLP:AMBER+STRICT``: how documents are headed."""
        return "TLP:" + _LABELS[self].upper()

    def __str__(self) -> str:
        return _LABELS[self]

    def __format__(self, spec: str) -> str:
        return format(_LABELS[self], spec)

    def allows(self, level: TLP) -> bool:
        """True when a reader cleared for ``self`` may see content marked ``level``."""
        return level <= self


_LABELS = {TLP.CLEAR: "clear", TLP.GREEN: "green", TLP.AMBER: "amber", TLP.AMBER_STRICT: "amber+strict", TLP.RED: "red"}
LEVELS: tuple[str, ...] = tuple(_LABELS[t] for t in TLP)
"""TLP 2.0 names in order of restriction."""

DEFAULT_TLP = TLP.AMBER
"""What unmarked content counts as unless the workspace configures otherwise (``[sharing]
default_tlp`` in sightline.toml)."""

_ALIASES = {
    "clear": TLP.CLEAR,
    "white": TLP.CLEAR,
    "green": TLP.GREEN,
    "amber": TLP.AMBER,
    "amber+strict": TLP.AMBER_STRICT,
    "amber-strict": TLP.AMBER_STRICT,
    "amber_strict": TLP.AMBER_STRICT,
    "amberstrict": TLP.AMBER_STRICT,
    "amber strict": TLP.AMBER_STRICT,
    "red": TLP.RED,
}


def _lookup(value: object) -> TLP | None:
    if isinstance(value, TLP):
        return value
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return _lookup_text(value)
    return _lookup_text(str(value))


@functools.lru_cache(maxsize=1024)
def _lookup_text(value: str) -> TLP | None:
    text = value.strip().lower()
    for prefix in ("tlp:", "tlp-", "tlp_", "tlp "):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
            break
    return _ALIASES.get(text)


def parse_tlp(value: object, *, what: str = "TLP level") -> TLP:
    """The level ``value`` names.

    Raises
    ------
    TLPError
        ``value`` is empty or not a TLP level.
    """
    level = _lookup(value)
    if level is None:
        raise TLPError(f"unknown {what} {value!r}", field="tlp", hint="use one of " + ", ".join(LEVELS))
    return level


def marking(value: object, default: TLP = DEFAULT_TLP) -> TLP:
    """The level of content marked ``value``: ``default`` when unmarked, RED when unreadable."""
    if value.__class__ is str:  # the common case, once per evidence row: one dictionary look-up
        known = _MARKED.get(value)
        if known is not None:
            return known
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    level = _lookup(value)
    level = TLP.RED if level is None else level
    if value.__class__ is str and len(_MARKED) < 4096:
        _MARKED[value] = level
    return level


_MARKED: dict[str, TLP] = {}
"""Level of each marked (non-empty) text seen: the rule above, remembered."""


def most_restrictive(values: Iterable[TLP], default: TLP = TLP.CLEAR) -> TLP:
    """The most restrictive of ``values`` (``default`` when there are none)."""
    return max(values, default=default)


def marking_label(value: object, default: object = None) -> str:
    """Label of the marking ``value`` (unmarked: ``default``'s level, else :data:`DEFAULT_TLP`)."""
    return marking(value, marking(default) if default is not None else DEFAULT_TLP).label


def strictest_label(values: Iterable[object]) -> str:
    """Label of the most restrictive of some markings (unmarked ones count as the default)."""
    return most_restrictive((marking(v) for v in values), default=TLP.CLEAR).label
