"""Findings shared the way every output shares them (the one policy), for renderer tests."""

from __future__ import annotations

from typing import Any

from sightline.core.tlp import parse_tlp
from sightline.findings import Audience, from_dict, share

SECRET = b"test-workspace-pseudonym-key-0123456789"


def shared(doc: dict[str, Any], tlp: str | None = None, *, anonymize: bool = False) -> tuple[dict[str, Any], list[str]]:
    """``doc`` as an audience at ``tlp`` sees it (dict), and the names of what was withheld."""
    audience = Audience(None if tlp is None else parse_tlp(tlp), anonymize, SECRET if anonymize else b"")
    s = share(from_dict(doc), audience)
    return s.to_dict(), s.withheld
