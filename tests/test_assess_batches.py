"""Assessment works one organization at a time: every contact is assessed exactly once, in
its organization's batch, with its own connection-series statistics (IPv4 and IPv6 keys)."""

from __future__ import annotations

import ipaddress
import random

import pyarrow as pa

from sightline.assess import _contacts_by_org
from sightline.detect import Detection

V6 = pa.binary(16)


def _v6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def _detection(seed: int) -> tuple[Detection, dict[str, str], dict[tuple, int]]:
    rnd = random.Random(seed)
    hosts = [("v4", int(ipaddress.IPv4Address(f"10.0.{o}.{h}")), f"org-{o}") for o in range(4) for h in range(1, 6)]
    hosts += [("v6", _v6(f"2001:db8:{o}::{h}"), f"org-{o}") for o in range(2) for h in range(1, 3)]
    hosts.append(("v4", int(ipaddress.IPv4Address("192.0.2.9")), None))  # no registry entry: by ASN
    rows, series, want_n = [], [], {}
    for i in range(400):
        kind, ip, _ = rnd.choice(hosts)
        actor = rnd.choice([int(ipaddress.IPv4Address("45.77.0.1")), _v6("2a05:d014::1")])
        port = rnd.choice([443, 8443, None])
        ind = "ind-" + str(rnd.randint(0, 3))
        rows.append({"host_ip4": ip if kind == "v4" else None, "host_ip6": ip if kind == "v6" else None,
                     "actor_ip4": actor if isinstance(actor, int) else None,
                     "actor_ip6": actor if isinstance(actor, bytes) else None,
                     "indicator": ind, "service_port": port, "row": i})
    seen = set()
    for r in rows:
        key = (r["host_ip4"], r["host_ip6"], r["actor_ip4"], r["actor_ip6"], r["indicator"], r["service_port"])
        if key in seen or rnd.random() < 0.3:
            continue
        seen.add(key)
        n = rnd.randint(2, 500)
        want_n[key] = n
        series.append({**{k: v for k, v in zip(("host_ip4", "host_ip6", "actor_ip4", "actor_ip6", "indicator",
                                                "service_port"), key)},
                       "n": n, "q1": 1.0, "q2": 2.0, "q3": 3.0, "dt_mad": 0.5, "size_median": 10.0, "size_mad": 1.0})
    schema = pa.schema([("host_ip4", pa.uint32()), ("host_ip6", V6), ("actor_ip4", pa.uint32()), ("actor_ip6", V6),
                        ("indicator", pa.string()), ("service_port", pa.int32()), ("row", pa.int64())])
    sschema = pa.schema([*[schema.field(k) for k in schema.names[:6]], ("n", pa.int64()), ("q1", pa.float64()),
                         ("q2", pa.float64()), ("q3", pa.float64()), ("dt_mad", pa.float64()),
                         ("size_median", pa.float64()), ("size_mad", pa.float64())])
    empty = pa.table({"x": pa.array([], pa.int8())})
    det = Detection(contacts=pa.Table.from_pylist(rows, schema), series=pa.Table.from_pylist(series, sschema),
                    stale=empty, host_org=empty, matched_flows=0)
    org_of_host = {(str(ipaddress.ip_address(ip)) if kind == "v4" else str(ipaddress.IPv6Address(ip))): (org or "AS64500")
                   for kind, ip, org in hosts}
    return det, org_of_host, want_n


def test_each_contact_once_in_its_organization_with_its_series() -> None:
    for seed in range(5):
        det, org_of_host, want_n = _detection(seed)
        seen_orgs, seen_rows = [], []
        for oid, contacts in _contacts_by_org(det, lambda h: org_of_host[h]):
            seen_orgs.append(oid)
            hosts_in_order = [c["host"] for c in contacts]
            for c in contacts:
                assert org_of_host[c["host"]] == oid == c["org_id"]
                key = (c["host_ip4"], c["host_ip6"], c["actor_ip4"], c["actor_ip6"], c["indicator"], c["service_port"])
                assert c["s_n"] == want_n.get(key), key  # None where the contact has no series
                assert c["actor_ip"] in ("45.77.0.1", "2a05:d014::1")
                seen_rows.append(c["row"])
            # a host's contacts are adjacent within its organization's batch
            firsts = {h: hosts_in_order.index(h) for h in hosts_in_order}
            lasts = {h: len(hosts_in_order) - 1 - hosts_in_order[::-1].index(h) for h in hosts_in_order}
            assert all(lasts[h] - firsts[h] + 1 == hosts_in_order.count(h) for h in firsts)
        assert len(seen_orgs) == len(set(seen_orgs))  # one batch per organization
        assert sorted(seen_rows) == list(range(det.contacts.num_rows))  # nothing lost, nothing twice
        assert any(v is not None for v in want_n.values())
