"""Where the real public data the tests read lives: ``tests/data/``, committed with the tests.

Origins (repository @ commit : path), licences and what was cut are in ``tests/data/SOURCES.md``;
``tests/data/make_cuts.py`` rebuilds the cut files from the full copies.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
GEO = DATA / "geo"  # ip-location-db tables, cut (CC-BY-4.0 / CC0)
INTEL = DATA / "intel"  # Flax Typhoon / Raptor Train indicator lists, OASIS STIX examples
SLIPS = DATA / "slips"  # Stratosphere Slips test captures and logs (GPL-2.0)
SDFT = DATA / "stratosphere-sdft"  # Stratosphere security-datasets-for-testing (GPL-2.0)
WRCCDC = DATA / "wrccdc2018"  # WRCCDC 2018 Zeek logs from brimdata/zed-sample-data, cut (CC-BY-SA-4.0)
AKVORADO = DATA / "akvorado"  # NetFlow/IPFIX export pcaps from akvorado's tests (AGPL-3.0)
NMAP = DATA / "nmap"  # nmap XML from python-libnmap's tests (Apache-2.0)


def kev_catalog() -> dict:
    """The CISA KEV catalog as published (``tests/data/kev/upstream.json`` names it).

    The package bundles that file verbatim; it is read from there after checking its SHA-256
    against the published one, rather than committing a second 1.2 MB copy.
    """
    want = json.loads((DATA / "kev" / "upstream.json").read_text())
    raw = resources.files("sightline").joinpath("data", "kev", "known_exploited_vulnerabilities.json").read_bytes()
    got = hashlib.sha256(raw).hexdigest()
    assert got == want["sha256"], f"bundled KEV catalog differs from {want['origin']} (sha256 {got})"
    return json.loads(raw)
