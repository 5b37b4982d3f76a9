"""NetFlow v5/v9 first/last switched are sysUptime stamps: a 32-bit ms counter that wraps
every 49.7 days.  A flow that started before the wrap and was exported after it must keep its
real date, not move 49.7 days into the future."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sightline.ingest.netflow import (
    UPTIME_AHEAD_MS,
    UPTIME_WRAP_MS,
    NetflowDecoder,
    uptime_age_ms,
)

WRAP = 1 << 32
EXPORT_S = 1_709_251_200  # 2024-03-01T00:00:00Z
EXPORT = datetime.fromtimestamp(EXPORT_S, UTC)


@pytest.mark.parametrize(
    "uptime,stamp,age",
    [
        (10_000, 4_000, 6_000),  # no wrap
        (5_000, WRAP - 10_000, 15_000),  # wrapped between the stamp and the export
        (0, WRAP - 1, 1),  # the export header taken right at the wrap
        (3_000_000_000, 0, 3_000_000_000),  # a long age (about 35 days) is no wrap either
        (10_000, 10_500, -500),  # stamped just after the header (Cisco CSCei12353): not a wrap
        (5_000, 5_000 + UPTIME_AHEAD_MS, -UPTIME_AHEAD_MS),
        (5_000, 5_000 + UPTIME_AHEAD_MS + 1, WRAP - UPTIME_AHEAD_MS - 1),  # beyond that it is a wrap
    ],
    ids=["plain", "wrapped", "at-wrap", "long-age", "ahead-500ms", "ahead-limit", "past-ahead-limit"],
)
def test_uptime_age_ms(uptime: int, stamp: int, age: int) -> None:
    assert UPTIME_WRAP_MS == WRAP
    got = uptime_age_ms(np.array([uptime], np.int64), np.array([stamp], np.int64))
    assert got.tolist() == [age]


def _v5(uptime: int, records: list[tuple[int, int]]) -> bytes:
    """A NetFlow v5 export packet, by hand: one TCP record per (first, last)."""
    hdr = struct.pack(">HHIIIIBBH", 5, len(records), uptime, EXPORT_S, 0, 1, 0, 1, 0)
    body = b""
    for i, (first, last) in enumerate(records):
        body += struct.pack(
            ">IIIHHIIIIHHBBBBHHBBH",
            0x0A000001 + i,
            0xC6336407,
            0,
            0,
            0,
            3,
            180,
            first,
            last,
            40000 + i,
            443,
            0,
            0x1B,
            6,
            0,
            0,
            0,
            0,
            0,
            0,
        )
    return hdr + body


def _v9(uptime: int, records: list[tuple[int, int]]) -> bytes:
    """A NetFlow v9 export packet, by hand: template 256 and one data set."""
    fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (22, 4), (21, 4)]
    tmpl = struct.pack(">HH", 256, len(fields)) + b"".join(struct.pack(">HH", ie, ln) for ie, ln in fields)
    tset = struct.pack(">HH", 0, 4 + len(tmpl)) + tmpl
    recs = b"".join(
        struct.pack(">IIHHBIIII", 0x0A000001 + i, 0xC6336407, 40000 + i, 443, 17, 180, 3, first, last)
        for i, (first, last) in enumerate(records)
    )
    recs += b"\0" * ((4 - len(recs) % 4) % 4)
    dset = struct.pack(">HH", 256, 4 + len(recs)) + recs
    return struct.pack(">HHIIII", 9, len(records), uptime, EXPORT_S, 0, 7) + tset + dset


@pytest.mark.parametrize("encode", [_v5, _v9], ids=["v5", "v9"])
def test_flows_across_the_uptime_wrap_keep_their_dates(encode) -> None:  # type: ignore[no-untyped-def]
    uptime = 5_000  # the exporter's uptime wrapped 5 s before this export
    records = [
        (WRAP - 10_000, 2_000),  # started 15 s before the export (before the wrap), ended 3 s before
        (WRAP - 20_000, WRAP - 12_000),  # started and ended before the wrap: 25 s and 17 s before
        (1_000, 4_000),  # after the wrap: 4 s and 1 s before
        (4_000, 5_400),  # ends 400 ms after the header's uptime (exporter clock skew): no wrap
    ]
    bad: list = []
    dec = NetflowDecoder(lambda *x: bad.append(x))
    dec.feed(encode(uptime, records), "192.0.2.9", 0)
    t = dec.flush().sort_by("src_port")
    assert bad == [] and t.num_rows == 4
    starts = [EXPORT - ts for ts in t.column("ts").to_pylist()]
    assert starts == [timedelta(seconds=15), timedelta(seconds=25), timedelta(seconds=4), timedelta(seconds=1)]
    assert t.column("duration_s").to_pylist() == [12.0, 8.0, 3.0, 1.4]


def test_no_wrap_is_unchanged() -> None:
    dec = NetflowDecoder(lambda *x: None)
    dec.feed(_v5(3_600_000, [(3_000_000, 3_500_000)]), "192.0.2.9", 0)
    t = dec.flush()
    assert EXPORT - t.column("ts")[0].as_py() == timedelta(seconds=600)
    assert t.column("duration_s").to_pylist() == [500.0]
