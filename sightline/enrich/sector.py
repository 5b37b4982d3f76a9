"""Sector of an organization from its name and domain: ordered keyword rules + user overrides.

``classify_sector(name, domain=None) -> (sector, confidence)``; sector ``None`` (confidence
0) when nothing matches.  Sectors: education, government, semiconductor, electronics,
aerospace, religious, association, telecom, hosting, finance, healthcare.  Rules are checked
in order (an "industry association" of semiconductor makers is an association; a university
hospital is education).  Users override with a CSV ``pattern,sector`` (a case-insensitive
regular expression on the name or domain) passed to :func:`load_overrides`; overrides are
checked first and get confidence 100.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import InputError

SECTORS = (
    "education",
    "government",
    "semiconductor",
    "electronics",
    "aerospace",
    "religious",
    "association",
    "telecom",
    "hosting",
    "finance",
    "healthcare",
)

# (sector, confidence, pattern on the lower-cased name)
_RULES: list[tuple[str, int, str]] = [
    (
        "association",
        85,
        r"\bassociation\b|\bassoc\b|\bchamber of commerce\b|\bfederation\b|\bsociety\b|\bcouncil\b|\binstitute of (professional|certified)\b|\bpartnership institute\b|公會|協會",
    ),
    (
        "religious",
        85,
        r"\bchurch\b|\btemple\b|\bmosque\b|\bdiocese\b|\bbuddhis|\bchristian\b|\bcatholic\b|\bpresbyterian\b|\bministries\b|\btzu chi\b|\bfo guang\b|\bfalun\b|\bmonastery\b|\bevangeli",
    ),
    (
        "education",
        90,
        r"\buniv|\buniversit|\bcollege\b|\bschool\b|\bacademy\b|\binstitute of technology\b|\bpolytechnic\b|\bresearch (institute|center|centre)\b|\binstitut(ul)? national de (recherche|cercetare)|\bcercetare\b|\brenater\b|\btanet\b|\bacademic\b|\beducation\b|\bnren\b|大學|學院",
    ),
    (
        "government",
        85,
        r"\bministry\b|\bministerio\b|\bminist[eè]re\b|\bgovernment\b|\bfederal\b|\bmunicipal|\bcity of\b|\bcounty\b|\bprovinsi\b|\bdinas\b|\bkominfo\b|\bbureau\b|\bdepartment of\b|\bnational (police|security|defen[cs]e)\b|\bboard of revenue\b|\bpublico do estado\b|\bnnsa\b|\barmed forces\b|\bparliament\b|\bexecutive yuan\b|政府|部$",
    ),
    (
        "semiconductor",
        90,
        r"semiconductor|microelectronic|\bfoundry\b|\bwafer\b|\btsmc\b|\bumc\b|mediatek|\bpowerchip\b|\bnanya\b|\bmacronix\b|\bwinbond\b|\bvanguard international\b|\bchip\b|半導體|晶圓",
    ),
    (
        "aerospace",
        90,
        r"aerospace|\baviation\b|\baeronaut|\bairbus\b|\bboeing\b|\bsatellite\b|\bspace (agency|center|centre)\b|\bchung-shan institute\b|航太|航空",
    ),
    (
        "electronics",
        80,
        r"electronic|\belectric (industry|co)|\bhon hai\b|\bfoxconn\b|\bfujitsu limited\b|\bquanta\b|\bcompal\b|\bwistron\b|\binventec\b|\bpegatron\b|\basustek\b|\bacer\b|\bubiquiti\b|\bdelta electronics\b|\boptronic|\bdisplay\b|電子|光電",
    ),
    (
        "finance",
        85,
        r"\bbank\b|\bbanco\b|\bbancorp\b|\bcredit union\b|\bcooperativas de credito\b|\binsurance\b|\bfinancial\b|\bsecurities\b|\bcapital\b|\binvestment\b|\bwealth\b|\bmarketplace\b|\bvisa\b|\bmastercard\b|\byatirim\b|\bmenkul\b|\bguggenheim\b|銀行|金控|證券",
    ),
    ("healthcare", 85, r"\bhospital\b|\bhealth\b|\bmedical\b|\bclinic\b|\bpolyclinic\b|\bhealthcare\b|醫院"),
    (
        "hosting",
        75,
        r"\bhosting\b|\bhost\b|\bdata ?cent(er|re)\b|\bserver\b|\bcloud\b|\bvps\b|\bcolo|\bdedicated\b|\binternap\b|\bsupremebytes\b|\bpeg tech\b|\bamazon\b|\bgoogle\b|\bmicrosoft\b|\bdigitalocean\b|\bovh\b|\bhetzner\b|\bakamai\b|\bcloudflare\b|\blinode\b|\bvultr\b|\balibaba\b|\btencent\b",
    ),
    (
        "telecom",
        75,
        r"telecom|\btelco\b|\btelekom|\btelecomunica|\btelecommunica|\bcommunications?\b|\bbroadband\b|\bfib(er|re|r)\b|\bcable\b|\btelevision\b|\btv\b|\bwireless\b|\bmobile\b|\bcellular\b|\bisp\b|\binternet services?\b|\binternet exchange\b|\bix\b|\bturkix\b|\bat&t\b|\bverizon\b|\bchunghwa\b|\btelefonica\b|\bnet link\b|\bnr link\b|電信",
    ),
]
_COMPILED = [(s, c, re.compile(p)) for s, c, p in _RULES]

_DOMAIN_RULES = [
    ("education", 80, re.compile(r"\.(edu|ac)(\.[a-z]{2})?$")),
    ("government", 80, re.compile(r"\.(gov|mil)(\.[a-z]{2})?$")),
]

_overrides: list[tuple[re.Pattern[str], str]] = []


def load_overrides(path: Path) -> int:
    """Load a user override CSV ``pattern,sector`` (header optional); returns rows loaded."""
    rows: list[tuple[re.Pattern[str], str]] = []
    try:
        text = Path(path).read_text("utf-8")
    except OSError as e:
        raise InputError(f"cannot read sector overrides: {e}", path=path) from e
    for lineno, cells in enumerate(csv.reader(text.splitlines()), start=1):
        if not cells or cells[0].startswith("#") or (lineno == 1 and cells[0].strip().lower() == "pattern"):
            continue
        if len(cells) < 2:
            raise InputError("expected pattern,sector", path=path, position=lineno)
        try:
            rows.append((re.compile(cells[0].strip(), re.IGNORECASE), cells[1].strip().lower()))
        except re.error as e:
            raise InputError(
                f"bad pattern: {e}",
                path=path,
                position=lineno,
                hint="patterns are regular expressions; escape dots as \\.",
            ) from e
    _overrides[:] = rows
    return len(rows)


def clear_overrides() -> None:
    _overrides.clear()


def classify_sector(name: str | None, domain: str | None = None) -> tuple[str | None, int]:
    """``(sector, confidence 0-100)`` for an organization name and optional domain."""
    n = " ".join(str(name or "").lower().replace('"', " ").split())
    d = str(domain or "").lower().strip(".")
    for pat, sector in _overrides:
        if pat.search(n) or (d and pat.search(d)):
            return sector, 100
    for sector, conf, pat in _COMPILED:
        if pat.search(n):
            return sector, conf
    for sector, conf, pat in _DOMAIN_RULES:
        if d and pat.search(d):
            return sector, conf
    return None, 0


__all__ = ["SECTORS", "classify_sector", "load_overrides", "clear_overrides"]
