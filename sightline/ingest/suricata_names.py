"""Suricata eve.json ``dns`` and ``tls`` events -> names dataset, beside the flows.

One eve.json holds flow events and name events together, so this module re-registers the
``suricata_eve`` format with a reader that yields both: flow batches exactly as
:func:`sightline.ingest.suricata.read_suricata_eve` makes them, and names batches
(:data:`sightline.ingest.names.NAMES_SCHEMA`) from the same lines.  The ingest writer sends
each batch to its dataset by schema.

Mapping (eve -> names):

- ``dns`` answers: eve 1 (one event per answer: ``dns.type == "answer"``, ``dns.rdata``,
  ``dns.ttl``) and eve 2/3 (``dns.answers[]`` with ``rrtype``, ``rdata``, ``ttl``); A/AAAA only.
  The name is the query (``dns.rrname``, or ``dns.queries[0].rrname`` in eve 3); the client
  is the side of the event not on port 53.
- ``tls``: ``tls.sni`` -> ``tls_sni``; ``tls.fingerprint`` (SHA-1) and ``tls.serial`` ->
  ``tls_cert`` of the server ``dest_ip``:``dest_port``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from . import suricata as _sur
from .base import Format, ReaderContext, register_format
from .names import _Builder, _explode, _norm_hex, _norm_name

_S, _I, _F = pa.string(), pa.int64(), pa.float64()
_ANSWER = pa.struct([("rrname", _S), ("rrtype", _S), ("ttl", _F), ("rdata", _S)])
EVE_NAMES_SCHEMA = pa.schema(
    [
        ("event_type", _S),
        ("timestamp", _S),
        ("src_ip", _S),
        ("src_port", _I),
        ("dest_ip", _S),
        ("dest_port", _I),
        (
            "dns",
            pa.struct(
                [
                    ("type", _S),
                    ("rrname", _S),
                    ("rrtype", _S),
                    ("ttl", _F),
                    ("rdata", _S),
                    ("answers", pa.list_(_ANSWER)),
                    ("queries", pa.list_(pa.struct([("rrname", _S)]))),
                ]
            ),
        ),
        ("tls", pa.struct([("sni", _S), ("fingerprint", _S), ("serial", _S)])),
    ]
)
"""The part of a dns/tls eve record we read."""

_MARKERS = (b'"event_type":"dns"', b'"event_type":"tls"', b'"event_type": "dns"', b'"event_type": "tls"')


def _field(struct: pa.Array, name: str) -> pa.Array:
    return pc.struct_field(struct, [struct.type.get_field_index(name)])


def _names(lines: list[bytes], first: int, b: _Builder) -> Iterator[pa.Table]:
    """Names rows from the dns/tls events among ``lines`` (bad JSON was quarantined by the flow pass)."""
    idx = [i for i, ln in enumerate(lines) if any(m in ln for m in _MARKERS)]
    if not idx:
        return
    sel = [lines[i] for i in idx]
    tables: list[tuple[pa.Table, np.ndarray]] = []
    try:
        tables.append((_table(sel), np.asarray(idx, dtype=np.int64) + first))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
        for i, ln in zip(idx, sel):  # rare: find the records that parse on their own
            try:
                tables.append((_table([ln]), np.asarray([i + first], dtype=np.int64)))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
                continue
    for t, line_nos in tables:
        if t.num_rows != len(line_nos):
            continue
        t = t.append_column("__line", pa.array(line_nos, pa.int64()))
        et = t.column("event_type")
        dns = t.filter(pc.fill_null(pc.equal(et, "dns"), False))
        if dns.num_rows:
            yield from _dns(dns, b)
        tls = t.filter(pc.fill_null(pc.equal(et, "tls"), False))
        if tls.num_rows:
            yield from _tls(tls, b)


def _table(lines: list[bytes]) -> pa.Table:
    data = b"\n".join(lines) + b"\n"
    return pajson.read_json(
        io.BytesIO(data),
        read_options=pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20)),
        parse_options=pajson.ParseOptions(
            explicit_schema=EVE_NAMES_SCHEMA, unexpected_field_behavior="ignore", newlines_in_values=False
        ),
    )


def _dns(t: pa.Table, b: _Builder) -> Iterator[pa.Table]:
    d = t.column("dns").combine_chunks()
    raw = t.drop(["__line"])
    lines = t.column("__line").to_numpy()
    # the client is the side not on port 53 (answer events are logged in reply direction)
    to_resolver = pc.fill_null(pc.equal(t.column("dest_port").combine_chunks(), 53), False)
    client = pc.if_else(to_resolver, t.column("src_ip").combine_chunks(), t.column("dest_ip").combine_chunks())
    ts = t.column("timestamp").combine_chunks()
    query = (
        pc.coalesce(
            _field(d, "rrname"),
            pc.struct_field(
                pc.list_element(
                    pc.if_else(
                        pc.fill_null(pc.greater(pc.list_value_length(_field(d, "queries")), 0), False),
                        _field(d, "queries"),
                        pa.scalar(None, _field(d, "queries").type),
                    ),
                    0,
                ),
                [0],
            ),
        )
        if len(d)
        else _field(d, "rrname")
    )
    want = pa.array(["A", "AAAA"])
    # eve 1: one answer per event
    one = pc.and_(
        pc.fill_null(pc.equal(_field(d, "type"), "answer"), False),
        pc.fill_null(pc.is_in(_field(d, "rrtype"), want), False),
    )
    one = pc.and_(one, pc.is_valid(_field(d, "rdata")))
    if pc.any(one).as_py():
        sel = pa.array(np.nonzero(np.asarray(one.to_numpy(zero_copy_only=False), dtype=bool))[0])
        cols = {
            "ts": ts.take(sel),
            "src": client.take(sel),
            "dst": _field(d, "rdata").take(sel),
            "name": _norm_name(query.take(sel)),
            "ttl_s": _field(d, "ttl").take(sel),
        }
        out = b.emit(cols, "dns_answer", lines[sel.to_numpy()], raw.take(sel))
        if out is not None and out.num_rows:
            yield out
    # eve 2/3: a list of answers per event
    parents, values, _ = _explode(_field(d, "answers"))
    if len(parents):
        ok = np.asarray(
            pc.fill_null(pc.is_in(pc.struct_field(values, [1]), want), False).to_numpy(zero_copy_only=False), dtype=bool
        )
        ok &= np.asarray(pc.is_valid(pc.struct_field(values, [3])).to_numpy(zero_copy_only=False), dtype=bool)
        if ok.any():
            keep = pa.array(np.nonzero(ok)[0])
            rows = pa.array(parents[ok])
            vals = values.take(keep)
            cols = {
                "ts": ts.take(rows),
                "src": client.take(rows),
                "dst": pc.struct_field(vals, [3]),
                "name": _norm_name(pc.coalesce(query.take(rows), pc.struct_field(vals, [0]))),
                "ttl_s": pc.struct_field(vals, [2]),
            }
            out = b.emit(cols, "dns_answer", lines[parents[ok]], raw.take(rows))
            if out is not None and out.num_rows:
                yield out


def _tls(t: pa.Table, b: _Builder) -> Iterator[pa.Table]:
    tls = t.column("tls").combine_chunks()
    raw = t.drop(["__line"])
    lines = t.column("__line").to_numpy()
    base = {
        "ts": t.column("timestamp").combine_chunks(),
        "src": t.column("src_ip").combine_chunks(),
        "dst": t.column("dest_ip").combine_chunks(),
        "dst_port": t.column("dest_port").combine_chunks(),
    }
    sni = _norm_name(_field(tls, "sni"))
    fp = _norm_hex(_field(tls, "fingerprint"))
    serial = _norm_hex(_field(tls, "serial"), serial=True)
    for kind, mask in (("tls_sni", pc.is_valid(sni)), ("tls_cert", pc.or_(pc.is_valid(fp), pc.is_valid(serial)))):
        m = np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)
        if not m.any():
            continue
        sel = pa.array(np.nonzero(m)[0])
        cols = {k: v.take(sel) for k, v in base.items()}
        cols["name"] = sni.take(sel)
        if kind == "tls_cert":
            sha1 = fp.take(sel)
            # Suricata's fingerprint is SHA-1; anything else is not trusted as one
            cols["cert_sha1"] = pc.if_else(
                pc.fill_null(pc.equal(pc.utf8_length(sha1), 40), False), sha1, pa.scalar(None, pa.string())
            )
            cols["cert_serial"] = serial.take(sel)
            cols["cert_index"] = pa.array(np.zeros(len(sel), dtype=np.int64))
        out = b.emit(cols, kind, lines[m], raw.take(sel))
        if out is not None and out.num_rows:
            yield out


def read_suricata_eve_all(ctx: ReaderContext) -> Iterator[pa.RecordBatch]:
    """Flows (flow/netflow events) and names (dns/tls events) from one eve.json, in one pass."""
    b = _Builder(ctx, "suricata_eve")

    def names(lines: list[bytes], first: int) -> Iterator[pa.RecordBatch]:
        for t in _names(lines, first, b):
            yield from t.to_batches()

    yield from _sur.read_suricata_eve(ctx, extra=names)


register_format(
    Format(
        "suricata_eve",
        _sur.sniff_suricata_eve,
        read_suricata_eve_all,
        "Suricata eve.json (flow/netflow events; dns/tls events as names)",
    ),
    first=True,
)

__all__ = ["EVE_NAMES_SCHEMA", "read_suricata_eve_all"]
