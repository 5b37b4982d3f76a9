"""IP address and CIDR handling, vectorized.

The flow store keeps IPv4 addresses as ``uint32`` and IPv6 addresses as 16-byte big-endian
binaries (two columns per address, exactly one of them set).  Text appears only at the
edges (parsing input, writing reports).  A CIDR becomes an integer range ``[start, end]``
(``uint32`` for IPv4, 16-byte binary for IPv6; binary compares bytewise, which is numeric
order for big-endian values).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

IPV6_TYPE = pa.binary(16)

_V4_RE = r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$"


@dataclass(frozen=True)
class ParsedIPs:
    """Result of :func:`parse_ips`: one entry per input value.

    ``ok`` is false where the input was present but not an IP address; ``missing`` is true
    where the input was null or empty (Zeek ``-``).
    """

    v4: pa.Array  # uint32, null where not IPv4
    v6: pa.Array  # binary(16), null where not IPv6
    ok: np.ndarray  # bool
    missing: np.ndarray  # bool


def _parse_v4_unique(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Parse dotted quads vectorized; returns (uint32 values, valid mask)."""
    n = len(values)
    out = np.zeros(n, dtype=np.uint32)
    if n == 0:
        return out, np.zeros(0, dtype=bool)
    shaped = pc.fill_null(pc.match_substring_regex(values, _V4_RE), False)
    mask = np.asarray(shaped.to_numpy(zero_copy_only=False), dtype=bool)
    if mask.any():
        cand = pc.filter(values, pa.array(mask))
        parts = pc.list_flatten(pc.split_pattern(cand, "."))
        octets = np.asarray(pc.cast(parts, pa.uint16()).to_numpy(zero_copy_only=False)).reshape(-1, 4)
        good = (octets <= 255).all(axis=1)
        o = octets.astype(np.uint32)
        vals = (o[:, 0] << 24) | (o[:, 1] << 16) | (o[:, 2] << 8) | o[:, 3]
        idx = np.nonzero(mask)[0]
        out[idx] = vals
        mask[idx] = good
    return out, mask


def parse_ips(values: pa.Array | pa.ChunkedArray) -> ParsedIPs:
    """Parse a string column of IPv4/IPv6 addresses into the store's two-column form.

    Works on the distinct values (dictionary encoding), so the Python fallback used for
    IPv6 text runs once per distinct IPv6 address, not once per flow.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.string())
    enc = pc.dictionary_encode(values)
    uniq: pa.Array = pc.utf8_trim_whitespace(enc.dictionary)  # per distinct value, not per row
    codes = enc.indices
    v4_vals, v4_ok = _parse_v4_unique(uniq)
    nu = len(uniq)
    v6_vals: list[bytes | None] = [None] * nu
    v6_ok = np.zeros(nu, dtype=bool)
    empty = np.zeros(nu, dtype=bool)
    rest = np.nonzero(~v4_ok)[0]
    if len(rest):
        texts = uniq.take(pa.array(rest)).to_pylist()
        for i, t in zip(rest.tolist(), texts):
            if t is None or t == "" or t == "-":
                empty[i] = True
                continue
            if ":" not in t:
                continue
            try:
                a = ipaddress.ip_address(t.split("%", 1)[0])
            except ValueError:
                continue
            if a.version == 6:
                m = a.ipv4_mapped
                if m is not None:
                    v4_vals[i] = int(m)
                    v4_ok[i] = True
                else:
                    v6_vals[i] = a.packed
                    v6_ok[i] = True
    codes_np = np.asarray(codes.to_numpy(zero_copy_only=False))
    null_mask = np.asarray(pc.is_null(codes).to_numpy(zero_copy_only=False), dtype=bool)
    codes_np = np.where(null_mask, 0, codes_np).astype(np.int64)
    if nu == 0:
        n = len(values)
        return ParsedIPs(pa.nulls(n, pa.uint32()), pa.nulls(n, IPV6_TYPE), np.zeros(n, bool), np.ones(n, bool))
    row_v4ok = v4_ok[codes_np] & ~null_mask
    row_v6ok = v6_ok[codes_np] & ~null_mask
    row_missing = empty[codes_np] | null_mask
    v4 = pa.array(v4_vals[codes_np], pa.uint32(), mask=~row_v4ok)
    v6_dict = pa.array(v6_vals, IPV6_TYPE)
    v6 = v6_dict.take(pa.array(codes_np, mask=~row_v6ok))
    return ParsedIPs(v4, v6, row_v4ok | row_v6ok, row_missing)


def ip_text(v4: int | None, v6: bytes | None) -> str | None:
    """One address from the store's two-column form to text."""
    if v4 is not None:
        return str(ipaddress.IPv4Address(int(v4)))
    if v6 is not None:
        return str(ipaddress.IPv6Address(bytes(v6)))
    return None


def ip_texts(v4: pa.Array | pa.ChunkedArray, v6: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Addresses from the store's two-column form to text, column-wise (as :func:`ip_text`):
    IPv4 by Arrow compute, IPv6 once per distinct value."""
    v4 = pa.chunked_array([v4]) if isinstance(v4, pa.Array) else v4
    v4 = v4.combine_chunks()
    n = len(v4)
    if n == 0:
        return pa.array([], pa.string())
    ok4 = pc.is_valid(v4)
    x = pc.fill_null(v4, 0).cast(pa.int64())
    octets = [pc.cast(pc.bit_wise_and(pc.shift_right(x, k), 255), pa.string()) for k in (24, 16, 8, 0)]
    text4 = pc.binary_join_element_wise(octets[0], octets[1], octets[2], octets[3], ".")
    if pc.all(ok4).as_py():
        return text4
    six = (v6 if isinstance(v6, pa.Array) else v6.combine_chunks()).dictionary_encode()
    words = pa.array([ip_text(None, b) for b in six.dictionary.to_pylist()], pa.string())
    text6 = words.take(six.indices)
    return pc.if_else(ok4, text4, text6)


@dataclass(frozen=True)
class IPRange:
    """A CIDR or single address as an integer range."""

    version: int
    start4: int | None
    end4: int | None
    start6: bytes | None
    end6: bytes | None
    prefix: int
    text: str


def parse_network(text: str) -> IPRange:
    """Parse an address or CIDR (``198.51.100.7``, ``2001:db8::/32``) into a range.

    Host bits set in a CIDR are ignored (``10.1.2.3/8`` means ``10.0.0.0/8``).
    Raises ``ValueError`` for anything that is not an address or network.
    """
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    net = ipaddress.ip_network(t, strict=False)
    if net.version == 6 and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
        net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}", strict=False)
    if net.version == 4:
        return IPRange(
            4,
            int(net.network_address),
            int(net.broadcast_address),
            None,
            None,
            net.prefixlen,
            str(net) if net.prefixlen < 32 else str(net.network_address),
        )
    return IPRange(
        6,
        None,
        None,
        net.network_address.packed,
        net.broadcast_address.packed,
        net.prefixlen,
        str(net) if net.prefixlen < 128 else str(net.network_address),
    )


__all__ = [
    "ip_texts",
    "IPV6_TYPE",
    "ParsedIPs",
    "parse_ips",
    "ip_text",
    "IPRange",
    "parse_network",
]
