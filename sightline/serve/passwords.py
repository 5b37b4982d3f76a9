"""Password policy for dashboard users: long enough and not a common password.

A password needs :data:`MIN_LENGTH` characters and must not be one of the 10,000 most common
passwords (``sightline/data/passwords/common-10k.txt``, see ``sightline/data/LICENSES.md``),
nor such a password with digits or symbols stuck before or after it (``dragon2024!!!!``), nor
one short piece repeated (``abcabcabcabc``), nor the user name.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from ..errors import AuthError

__all__ = ["MIN_LENGTH", "check_password", "is_common"]

MIN_LENGTH = 12
_PAD = re.compile(r"^[\d\W_]*(.*?)[\d\W_]*$", re.S)


@functools.cache
def _common() -> frozenset[str]:
    text = resources.files("sightline.data").joinpath("passwords/common-10k.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def is_common(password: str) -> bool:
    """True for a password an attacker tries first."""
    p = password.lower()
    common = _common()
    if p in common:
        return True
    core = _PAD.match(p)
    base = core.group(1) if core else p
    if len(base) >= 4 and base in common:
        return True
    # one short piece repeated: "abcabcabcabc", "aaaaaaaaaaaa", "passwordpassword"
    for n in range(1, len(p) // 2 + 1):
        if len(p) % n == 0 and p[:n] * (len(p) // n) == p:
            return n <= 3 or p[:n] in common
    return False


def check_password(password: str, name: str = "") -> None:
    """Raise :class:`AuthError` (with what to do) unless ``password`` is acceptable."""
    if len(password) < MIN_LENGTH:
        raise AuthError(
            "password too short",
            field="password",
            hint=f"use at least {MIN_LENGTH} characters; a few unrelated words make a good one",
        )
    if name and password.lower() == name.lower():
        raise AuthError(
            "password is the user name", field="password", hint="choose a password that is not the user name"
        )
    if is_common(password):
        raise AuthError(
            "password is too common",
            field="password",
            hint="it is on the list of the most used passwords (or one with digits added); "
            "choose a few unrelated words instead",
        )
