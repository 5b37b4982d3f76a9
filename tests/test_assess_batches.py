"""Assessment sees every contact exactly once, attributed to its organization, organizations
and hosts together (IPv4 and IPv6 hosts)."""

from __future__ import annotations

import ipaddress
import random

import pyarrow as pa

from sightline.assess import _prepare_contacts
from sightline.detect import Detection

V6 = pa.binary(16)


def _v6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def _detection(seed: int) -> tuple[Detection, dict[str, str]]:
    rnd = random.Random(seed)
    hosts = [("v4", int(ipaddress.IPv4Address(f"10.0.{o}.{h}")), f"org-{o}") for o in range(4) for h in range(1, 6)]
    hosts += [("v6", _v6(f"2001:db8:{o}::{h}"), f"org-{o}") for o in range(2) for h in range(1, 3)]
    hosts.append(("v4", int(ipaddress.IPv4Address("192.0.2.9")), None))  # no registry entry: by ASN
    rows = []
    for i in range(400):
        kind, ip, _ = rnd.choice(hosts)
        actor = rnd.choice([int(ipaddress.IPv4Address("45.77.0.1")), _v6("2a05:d014::1")])
        rows.append(
            {
                "host_ip4": ip if kind == "v4" else None,
                "host_ip6": ip if kind == "v6" else None,
                "actor_ip4": actor if isinstance(actor, int) else None,
                "actor_ip6": actor if isinstance(actor, bytes) else None,
                "indicator": "ind-" + str(rnd.randint(0, 3)),
                "service_port": rnd.choice([443, 8443, None]),
                "row": i,
            }
        )
    schema = pa.schema(
        [
            ("host_ip4", pa.uint32()),
            ("host_ip6", V6),
            ("actor_ip4", pa.uint32()),
            ("actor_ip6", V6),
            ("indicator", pa.string()),
            ("service_port", pa.int32()),
            ("row", pa.int64()),
        ]
    )
    empty = pa.table({"x": pa.array([], pa.int8())})
    det = Detection(contacts=pa.Table.from_pylist(rows, schema), stale=empty, host_org=empty, matched_flows=0)
    org_of_host = {
        (str(ipaddress.ip_address(ip)) if kind == "v4" else str(ipaddress.IPv6Address(ip))): (org or "AS64500")
        for kind, ip, org in hosts
    }
    return det, org_of_host


def test_each_contact_once_in_its_organization_hosts_together() -> None:
    for seed in range(5):
        det, org_of_host = _detection(seed)
        prepared = _prepare_contacts(det, org_of_host.__getitem__)
        assert prepared is not None
        t = prepared.table
        hosts, orgs = t.column("host").to_pylist(), t.column("org_id").to_pylist()
        for h, o, a in zip(hosts, orgs, t.column("actor_ip").to_pylist()):
            assert org_of_host[h] == o
            assert a in ("45.77.0.1", "2a05:d014::1")
        # an organization's contacts are adjacent, and within it a host's
        for keys in (orgs, list(zip(orgs, hosts))):
            runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
            assert len(runs) == len(set(runs))
        assert set(orgs) == set(org_of_host.values())
        assert sorted(t.column("row").to_pylist()) == list(range(det.contacts.num_rows))  # nothing lost, nothing twice
        # every contact has its behaviour rows, next to each other
        beh = prepared.beh_row.tolist()
        assert sorted(set(beh)) == list(range(t.num_rows)) and beh == sorted(beh)
