"""Findings and other JSON files are written streamed; the text is exactly json.dumps'."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sightline.store import atomic_write_json

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)


@given(_json, st.sampled_from([None, 2]))
def test_streamed_json_is_json_dumps(doc, indent) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.json"
        atomic_write_json(p, doc, indent=indent)
        text = p.read_text("utf-8")
        assert text == json.dumps(doc, indent=indent, default=str) + "\n"
        assert json.loads(text) == doc
        assert [f.name for f in Path(d).iterdir()] == ["x.json"]  # no temp file left behind
