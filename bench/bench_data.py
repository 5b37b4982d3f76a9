"""Synthetic data for the benchmarks (not a benchmark itself): flows, indicators, Zeek logs.

Flows follow the performance.md job: Zipf-popular external IPs over 7 days, internal hosts in
10.0.0.0/16, 5,000 indicator IPs of which half occur in the flows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from sightline.schema import FLOW_SCHEMA, INDICATOR_SCHEMA, ORG_SCHEMA
from sightline.store import FlowWriter, Workspace

DAY0 = 1_709_251_200  # 2024-03-01
EXT_POOL = 1_000_000
EXT_BASE = 0x2D000000  # 45.0.0.0
INT_BASE = 0x0A000000  # 10.0.0.0


def ext_pool(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # popularity rank independent of the address: unique() sorts, so shuffle, or the "rare"
    # indicators of a retro-hunt would be numerically adjacent and flatter a sorted layout
    return rng.permutation(np.unique(rng.integers(EXT_BASE, EXT_BASE + (1 << 26), EXT_POOL * 2, dtype=np.uint32)))[
        :EXT_POOL
    ]


def flow_chunk(n: int, rng: np.random.Generator, pool: np.ndarray, days: int = 7) -> pa.Table:
    """n IPv4 flows, internal host -> Zipf-popular external IP (10 % inbound)."""
    ext = pool[np.minimum(rng.zipf(1.3, n) - 1, len(pool) - 1)]
    host = (INT_BASE + rng.integers(1, 1 << 16, n)).astype(np.uint32)
    inbound = rng.random(n) < 0.1
    src = np.where(inbound, ext, host).astype(np.uint32)
    dst = np.where(inbound, host, ext).astype(np.uint32)
    ts = (DAY0 * 1_000_000 + rng.integers(0, days * 86_400_000_000, n)).astype(np.int64)
    ob = rng.integers(0, 20_000, n)
    states = np.array(["SF", "S0", "REJ", "SF", "SF", "RSTO"])
    return _ipv4_flows(
        ts=ts,
        duration_s=rng.exponential(5.0, n),
        src_ip=src,
        src_port=rng.integers(1024, 65535, n, dtype=np.int32),
        dst_ip=dst,
        dst_port=rng.choice(np.array([443, 80, 53, 22, 8443], np.int32), n),
        proto=pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 2, n, dtype=np.int8)), ["tcp", "udp"]),
        bytes_out=ob,
        bytes_in=rng.integers(0, 200_000, n),
        packets_out=1 + ob // 1000,
        packets_in=rng.integers(1, 200, n),
        conn_state=pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, len(states), n, dtype=np.int8)), states),
        source_file="bench",
    )


def _ipv4_flows(*, ts: np.ndarray, source_file: str, **columns: Any) -> pa.Table:
    """A flows table of IPv4 Zeek flows from ``columns`` (numpy arrays or Arrow arrays; ``ts`` in
    microseconds), the columns every bench flow has in common filled in."""
    n = len(ts)
    cols: dict[str, Any] = {"ts": pa.array(ts, pa.timestamp("us", tz="UTC"))}
    for name, value in columns.items():
        arr = value if isinstance(value, pa.Array) else pa.array(value)
        cols[name] = arr.cast(pa.string()) if pa.types.is_dictionary(arr.type) else arr
    for name in ("src_ip6", "dst_ip6", "service", "history"):
        cols[name] = pa.nulls(n, FLOW_SCHEMA.field(name).type)
    cols.update(
        sensor=pa.array(["s1"] * n),
        source_format=pa.array(["zeek_tsv"] * n),
        source_file=pa.array([source_file] * n),
    )
    return pa.table({f.name: cols[f.name] for f in FLOW_SCHEMA}, schema=FLOW_SCHEMA)


def make_store(ws: Workspace, n: int, seed: int = 7, chunk: int = 1_000_000, days: int = 7, tag: str = "") -> None:
    """Write n flows into the workspace store through the real FlowWriter (one 'input file')."""
    rng = np.random.default_rng(seed)
    pool = ext_pool()
    sha = (f"{seed:02x}{tag}" + "0" * 64)[:64]
    w = FlowWriter(ws, sha, f"bench-{seed}-{tag}", "zeek_tsv")
    done = 0
    while done < n:
        k = min(chunk, n - done)
        w.write(flow_chunk(k, rng, pool, days))
        done += k
    w.commit(None)


def victim_chunk(
    orgs: range, hosts_per_org: int, c2: np.ndarray, rng: np.random.Generator, beacons: int = 24
) -> pa.Table:
    """A relay botnet's victims: hosts 1..``hosts_per_org`` of each organization's /24 (org i is
    10.(i>>8).(i&255).0/24, as :func:`orgs`) call their organization's C2 (``c2[i]``) about
    hourly (+-30 s), two-way, ``beacons`` times from a random start in the first day."""
    org = np.repeat(np.asarray(orgs, dtype=np.int64), hosts_per_org)
    host = (INT_BASE + org * 256 + np.tile(np.arange(1, hosts_per_org + 1), len(orgs))).astype(np.uint32)
    start = DAY0 + rng.integers(0, 86_400, len(host))
    src = np.repeat(host, beacons)
    dst = np.repeat(c2[org].astype(np.uint32), beacons)
    k = np.tile(np.arange(beacons), len(host))
    ts = (np.repeat(start, beacons) + 3600 * k + rng.integers(-30, 31, len(src))) * 1_000_000
    n = len(src)
    ob = rng.integers(300, 700, n)
    return _ipv4_flows(
        ts=ts,
        duration_s=rng.exponential(2.0, n),
        src_ip=src,
        src_port=rng.integers(1024, 65535, n, dtype=np.int32),
        dst_ip=dst,
        dst_port=np.full(n, 443, np.int32),
        proto=pa.array(["tcp"] * n),
        bytes_out=ob,
        bytes_in=rng.integers(1000, 3000, n),
        packets_out=1 + ob // 500,
        packets_in=rng.integers(2, 6, n),
        conn_state=pa.array(["SF"] * n),
        source_file="bench-victims",
    )


def indicators(n: int = 5000, present_fraction: float = 0.5, seed: int = 11, popular: bool = True) -> pa.Table:
    """n indicator IPs; ``present_fraction`` of them occur in the flows (popular or rare ones)."""
    rng = np.random.default_rng(seed)
    pool = ext_pool()
    k = int(n * present_fraction)
    if popular:
        present = rng.choice(pool[:50_000], k, replace=False)
    else:  # retro-hunt: new intelligence is mostly about rarely seen infrastructure
        present = rng.choice(pool[5_000:60_000], k, replace=False)
    absent = rng.integers(0xC6120000, 0xC613FFFF, n - k, dtype=np.uint32)  # 198.18.0.0/15, never in flows
    ips = np.concatenate([present, absent]).astype(np.uint32)
    m = len(ips)
    vals = [f"{i >> 24}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in ips.tolist()]
    cols = {f.name: pa.nulls(m, f.type) for f in INDICATOR_SCHEMA}
    cols.update(
        {
            "indicator_id": pa.array([f"bench:{v}" for v in vals]),
            "type": pa.array(["ipv4"] * m),
            "value": pa.array(vals),
            "ip_start4": pa.array(ips),
            "ip_end4": pa.array(ips),
            "actor": pa.array(["RedJuliett"] * m),
            "confidence": pa.array(np.full(m, 80, np.int32)),
            "tlp": pa.array(["amber"] * m),
            "revoked": pa.array(np.zeros(m, bool)),
        }
    )
    return pa.table(cols, schema=INDICATOR_SCHEMA)


def orgs(n: int = 256) -> pa.Table:
    """n organizations, one /24 each, from 10.0.0.0 up (256 of them cover 10.0.0.0/16)."""
    starts = (INT_BASE + np.arange(n, dtype=np.uint32) * 256).astype(np.uint32)
    cols = {f.name: pa.nulls(n, f.type) for f in ORG_SCHEMA}
    cols.update(
        {
            "org_id": pa.array([f"org-{i:03d}" for i in range(n)]),
            "name": pa.array([f"Org {i}" for i in range(n)]),
            "sector": pa.array(["semiconductor"] * n),
            "country": pa.array(["TW"] * n),
            "cidr": pa.array([f"10.{i >> 8}.{i & 255}.0/24" for i in range(n)]),
            "prefix_len": pa.array(np.full(n, 24, np.int32)),
            "ip_start4": pa.array(starts),
            "ip_end4": pa.array(starts + 255),
        }
    )
    return pa.table(cols, schema=ORG_SCHEMA)


# --- shared by the bench modules ----------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

CACHE = Path(os.environ.get("SIGHTLINE_BENCH_DIR", "/tmp/sightline-bench"))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cached_store(n: int) -> Workspace:
    """A workspace holding n flows (built once, reused by later benches of the run)."""
    from sightline.store import writer as store

    # the layout is part of the cache key: row-group size and locality sort change what is measured
    root = CACHE / f"store-{n}-v5-rg{store.ROW_GROUP_ROWS}{'s' if store.SORT_PARTS else 'u'}"
    ws = Workspace(root)
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        ws.ensure()
        make_store(ws, n)
        (root / ".complete").write_text("ok")
    return ws


def cached_botnet_store(background: int, n_orgs: int = 1000, hosts_per_org: int = 100) -> Workspace:
    """The big-result case: ``background`` ordinary flows plus ``n_orgs`` x ``hosts_per_org``
    victim hosts, each organization's calling its own C2 (one of the 2,500 :func:`indicators` that
    never occur in the background, so at most 2,500 organizations), as a relay botnet seen by an ISP."""
    if not 0 < n_orgs <= 2500:
        raise ValueError("the botnet case has one C2 per organization: 1 to 2,500 organizations")
    from sightline.store import writer as store

    tag = f"botnet-{background}-{n_orgs}x{hosts_per_org}-v1-rg{store.ROW_GROUP_ROWS}"
    root = CACHE / tag
    ws = Workspace(root)
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        ws.ensure()
        make_store(ws, background)
        ind = indicators(5000)
        c2 = np.asarray(ind.column("ip_start4").to_numpy()[2500 : 2500 + n_orgs])  # the absent half
        rng = np.random.default_rng(3)
        w = FlowWriter(ws, ("b0" + "0" * 64)[:64], "bench-victims", "zeek_tsv")
        for first in range(0, n_orgs, 100):
            w.write(victim_chunk(range(first, min(n_orgs, first + 100)), hosts_per_org, c2, rng))
        w.commit(None)
        (root / ".complete").write_text("ok")
    return ws


def store_bytes(ws: Workspace) -> int:
    return sum(os.path.getsize(f) for f in ws.flow_files())


def emit(results: list[dict]) -> None:
    """Print results for bench.run (one JSON line, last line of stdout)."""
    print("RESULTS " + json.dumps(results), flush=True)
