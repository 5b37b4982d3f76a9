"""Table schemas: the flow store's contract and the tables stages hand to each other.

Flow rows follow design.md: one row per flow.  Addresses are stored as integers: ``src_ip``
/ ``dst_ip`` hold IPv4 as ``uint32`` (null for IPv6 flows), ``src_ip6`` / ``dst_ip6`` hold
IPv6 as 16-byte big-endian binary (null for IPv4 flows).
"""

from __future__ import annotations

import pyarrow as pa

from .core.tlp import LEVELS
from .net import IPV6_TYPE

TS = pa.timestamp("us", tz="UTC")

FLOW_SCHEMA = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("duration_s", pa.float64()),
        pa.field("src_ip", pa.uint32()),
        pa.field("src_ip6", IPV6_TYPE),
        pa.field("src_port", pa.int32()),
        pa.field("dst_ip", pa.uint32()),
        pa.field("dst_ip6", IPV6_TYPE),
        pa.field("dst_port", pa.int32()),
        pa.field("proto", pa.string()),
        pa.field("bytes_out", pa.int64()),
        pa.field("bytes_in", pa.int64()),
        pa.field("packets_out", pa.int64()),
        pa.field("packets_in", pa.int64()),
        pa.field("conn_state", pa.string()),
        pa.field("service", pa.string()),
        pa.field("sensor", pa.string()),
        pa.field("source_format", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("history", pa.string()),
    ]
)
"""One row per flow.  ``bytes_in``/``packets_in`` are null where the source is unidirectional.

``history``: Zeek's connection history letters (``ShADadFf``: uppercase the originator's
packets, lowercase the responder's; ``S`` the originator's SYN, ``^`` roles flipped by the
sensor), as Zeek wrote it, as sightline's pcap reader derives it, or from Suricata's TCP flags;
null where the source says nothing about it (NetFlow, nfdump, stores written before the column).
Appended last: parts without it read as null."""

FLOW_COLUMNS = FLOW_SCHEMA.names

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string()),
        pa.field("position", pa.int64()),  # line number (text formats) or byte offset
        pa.field("position_kind", pa.string()),  # "line" | "offset" | "record"
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),  # the offending text, cut to 512 characters
    ]
)

INDICATOR_TYPES = (
    "ipv4",  # address or CIDR; ip_start4/ip_end4 set
    "ipv6",  # address or CIDR; ip_start6/ip_end6 set
    "domain",
    "url",
    "x509_sha1",
    "x509_sha256",
    "x509_md5",
    "x509_serial",
    "ja3",
    "file_hash",
)

TLP_LEVELS = LEVELS
"""TLP 2.0 names in order of restriction (:mod:`sightline.core.tlp`)."""

INDICATOR_SCHEMA = pa.schema(
    [
        pa.field("indicator_id", pa.string(), nullable=False),  # stable: source + type + value
        pa.field("type", pa.string(), nullable=False),  # one of INDICATOR_TYPES
        pa.field("value", pa.string(), nullable=False),  # normalized text (IP, CIDR, domain, ...)
        pa.field("ip_start4", pa.uint32()),
        pa.field("ip_end4", pa.uint32()),
        pa.field("ip_start6", IPV6_TYPE),
        pa.field("ip_end6", IPV6_TYPE),
        pa.field("port", pa.int32()),  # set for ip|port indicators
        pa.field("actor", pa.string()),
        pa.field("valid_from", TS),  # null = open
        pa.field("valid_until", TS),  # null = open
        pa.field("confidence", pa.int32()),  # 0-100
        pa.field("tlp", pa.string()),  # one of TLP_LEVELS
        pa.field("source", pa.string()),  # file name, TAXII collection, MISP event ...
        pa.field("source_id", pa.string()),  # STIX object id, MISP attribute uuid, CSV line
        pa.field("description", pa.string()),
        pa.field("revoked", pa.bool_()),
        pa.field("imported_at", TS),
    ]
)

ORG_SCHEMA = pa.schema(
    [
        pa.field("org_id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("sector", pa.string()),
        pa.field("country", pa.string()),
        pa.field("cidr", pa.string()),
        pa.field("prefix_len", pa.int32()),
        pa.field("ip_start4", pa.uint32()),
        pa.field("ip_end4", pa.uint32()),
        pa.field("ip_start6", IPV6_TYPE),
        pa.field("ip_end6", IPV6_TYPE),
    ]
)

ZEEK_CONN_STATES = (
    "S0",
    "S1",
    "SF",
    "REJ",
    "S2",
    "S3",
    "RSTO",
    "RSTR",
    "RSTOS0",
    "RSTRH",
    "SH",
    "SHR",
    "OTH",
)
FAILED_STATES = ("S0", "REJ", "RSTOS0", "RSTRH", "SH", "SHR")
"""Zeek states of a connection that never carried a completed exchange."""

__all__ = [
    "TS",
    "FLOW_SCHEMA",
    "FLOW_COLUMNS",
    "QUARANTINE_SCHEMA",
    "INDICATOR_TYPES",
    "TLP_LEVELS",
    "INDICATOR_SCHEMA",
    "ORG_SCHEMA",
    "ZEEK_CONN_STATES",
    "FAILED_STATES",
]
