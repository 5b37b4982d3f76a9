"""Vendor version strings and CVE version ranges.

Edge vendors write versions in many shapes: ``7.2.4`` (FortiOS), ``10.2.9-h1`` (PAN-OS
hotfix), ``22.4R2.1`` (Ivanti), ``13.1-49.13`` (NetScaler build), ``7.0.1-5035`` (SonicOS),
``1.1.4 Build 20230219`` (TP-Link).  All of them order correctly as the tuple of their
numbers, so :func:`version_key` keeps the digit runs and drops the letters -- except one
trailing letter right after a digit (OpenSSL ``1.0.1g``), which counts as a last component;
missing trailing components count as zero (``7.2`` == ``7.2.0``).

A range follows the CVE JSON 5 ``affected.versions`` vocabulary: ``introduced`` (inclusive,
optional), and either ``fixed`` (exclusive, the CVE record's ``lessThan``) or
``last_affected`` (inclusive, ``lessThanOrEqual``); NVD's ``versionStartExcluding`` is
``introduced_after``.  Pure functions; tested from tables.

Why not ``univers``: measured on these vendor notations its ``GenericVersion`` orders
``10.2.9-h1`` after ``10.2.10``, ``22.7R2.3`` after ``22.7R2.10`` and ``9.16(4)`` after
``9.16(10)``, and its ``SemverVersion`` reads the PAN-OS hotfix ``10.2.9-h1`` as a
pre-release *before* ``10.2.9``; the digit-run tuple gets all of them right and is faster
(5.8 us vs 8.8 us a comparison).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_DIGITS = re.compile(r"\d+")
_LETTER_TAIL = re.compile(r"\d\.?\d*([a-z])$")

VersionKey = tuple[int, ...]


def version_key(text: str | None) -> VersionKey | None:
    """Turn a version string into a comparable tuple of integers.

    Parameters
    ----------
    text
        A vendor version string.

    Returns
    -------
    tuple of int or None
        The digit runs in order, trailing zeros removed (so ``7.2`` and ``7.2.0`` are
        equal); ``None`` when the text holds no digit at all (unknown version).
    """
    if text is None:
        return None
    t = str(text).strip()
    parts = [int(d) for d in _DIGITS.findall(t)]
    if not parts:
        return None
    m = _LETTER_TAIL.search(t)
    if m:  # OpenSSL-style letter releases: 1.0.1g comes after 1.0.1 and 1.0.1f
        parts.append(ord(m.group(1).lower()) - 96)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _cmp(a: VersionKey, b: VersionKey) -> int:
    n = max(len(a), len(b))
    pa_ = a + (0,) * (n - len(a))
    pb = b + (0,) * (n - len(b))
    return (pa_ > pb) - (pa_ < pb)


def compare_versions(a: str, b: str) -> int:
    """Compare two version strings: -1, 0 or 1.  Raises ``ValueError`` if one has no digits."""
    ka, kb = version_key(a), version_key(b)
    if ka is None or kb is None:
        raise ValueError(f"not a version: {a!r} / {b!r}")
    return _cmp(ka, kb)


def in_range(version: str | None, rng: Mapping[str, str] | str) -> bool:
    """Whether ``version`` lies inside one CVE range.

    Parameters
    ----------
    version
        The service's version string; unknown (``None`` or no digits) is never in range,
        because flagging a device we cannot date would bury the real findings.
    rng
        ``{"introduced": X?, "fixed": Y}`` or ``{"introduced": X?, "last_affected": Y}``, or a
        bare version string: that one version.
    """
    key = version_key(version)
    if key is None:
        return False
    if isinstance(rng, str):  # one exact version
        ek = version_key(rng)
        return ek is not None and _cmp(key, ek) == 0
    intro = rng.get("introduced")
    if intro is not None:
        ik = version_key(intro)
        if ik is not None and _cmp(key, ik) < 0:
            return False
    after = rng.get("introduced_after")  # NVD versionStartExcluding
    if after is not None:
        ak = version_key(after)
        if ak is not None and _cmp(key, ak) <= 0:
            return False
        intro = intro or after
    fixed = rng.get("fixed")
    if fixed is not None:
        fk = version_key(fixed)
        return fk is not None and _cmp(key, fk) < 0
    last = rng.get("last_affected")
    if last is not None:
        lk = version_key(last)
        return lk is not None and _cmp(key, lk) <= 0
    return intro is not None  # "introduced" alone: every later version is affected


def in_any_range(version: str | None, ranges: Iterable[Mapping[str, str] | str]) -> bool:
    """Whether ``version`` lies inside at least one of ``ranges``."""
    return any(in_range(version, r) for r in ranges)


__all__ = ["VersionKey", "version_key", "compare_versions", "in_range", "in_any_range"]
