"""Cut the ip-location-db tables down to the ranges that hold an address of a case's telemetry.

Writes bench/real/geo/asn-ipv4.csv and country-ipv4.csv (ip-location-db layout, no header:
``start,end,asn,org`` and ``start,end,country``), which run.py passes to ``sightline hunt --geo``.
The full tables are not committed (see SOURCES.md); this cut is, with its CC-BY-4.0 / CC0
attribution in geo/ATTRIBUTION.md.

Usage: python -m bench.real.make_geo [--geo-dir /work/shared/data/geo]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import pyarrow as pa

from .cases import case_telemetry, load_cases
from .facts import load

HERE = Path(__file__).resolve().parent
OUT = HERE / "geo"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--geo-dir", type=Path, default=Path("/work/shared/data/geo"))
    args = ap.parse_args(argv)
    asn, country = args.geo_dir / "asn-ipv4.csv.gz", args.geo_dir / "geo-whois-asn-country-ipv4.csv.gz"
    for p in (asn, country):
        if not p.exists():
            print(f"error: {p} not found; pass --geo-dir with the ip-location-db tables", file=sys.stderr)
            return 2
    paths = sorted({p for c in load_cases() for p in case_telemetry(c)})
    ips: set[str] = set()
    for p in paths:
        t = load(p)
        ips.update(v for v in t.column("src").to_pylist() + t.column("dst").to_pylist() if v and ":" not in v)
    con = duckdb.connect()
    con.register("ips", pa.table({"ip": sorted(ips)}))
    con.execute("create table a as select * from ips")
    v4 = (
        "(split_part({c},'.',1)::ubigint*16777216 + split_part({c},'.',2)::ubigint*65536 + "
        "split_part({c},'.',3)::ubigint*256 + split_part({c},'.',4)::ubigint)"
    )
    OUT.mkdir(exist_ok=True)
    for src, name, cols in (
        (asn, "asn-ipv4.csv", "column0, column1, column2, column3"),
        (country, "country-ipv4.csv", "column0, column1, column2"),
    ):
        q = f"""
          with r as (select {cols}, {v4.format(c="column0")} s, {v4.format(c="column1")} e
                     from read_csv('{src}', header=false, all_varchar=true)),
               i as (select distinct {v4.format(c="ip")} n from a)
          select distinct {cols}, s from r join i on i.n between r.s and r.e order by s"""
        rows = con.execute(q).fetchall()
        with open(OUT / name, "w") as fh:
            for row in rows:
                fh.write(
                    ",".join('"' + str(v).replace('"', '""') + '"' if "," in str(v) else str(v) for v in row[:-1])
                    + "\n"
                )
        print(f"{name}: {len(rows)} ranges for {len(ips)} addresses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
