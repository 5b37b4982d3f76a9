"""Score findings against a scenario's ground truth.

Per verdict (``compromised``, ``exploitation_attempt``, ``reconnaissance``): precision,
recall and F1 of the exact verdict; overall: the micro-average over those three (a finding
counts only with the right verdict) and ``detection`` (any verdict vs. none, ignoring which);
a confusion matrix over the four verdicts including ``none``.  Done at organization level, and
at host level when the truth carries ``hosts``.  An undefined ratio (0/0) is ``None``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from rich.console import Group
from rich.table import Table

from .core.verdicts import VERDICTS
from .errors import InputError

LABELS = (*VERDICTS, "none")


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def prf(truth: dict[str, str], pred: dict[str, str], universe: set[str] | None = None) -> dict[str, Any]:
    """Scores of ``pred`` against ``truth`` (both: key -> verdict; absent keys are ``none``).

    Parameters
    ----------
    truth, pred
        Mappings from organization id (or host IP) to verdict.
    universe
        All keys that exist (to count true negatives); defaults to the keys of both.
    """
    keys = set(truth) | set(pred) | (universe or set())
    t = {k: truth.get(k, "none") for k in keys}
    p = {k: pred.get(k, "none") for k in keys}
    confusion = {a: {b: 0 for b in LABELS} for a in LABELS}
    for k in keys:
        confusion[t[k]][p[k]] += 1
    per: dict[str, dict[str, Any]] = {}
    tp_all = fp_all = fn_all = 0
    for v in VERDICTS:
        tp = confusion[v][v]
        fp = sum(confusion[o][v] for o in LABELS if o != v)
        fn = sum(confusion[v][o] for o in LABELS if o != v)
        pr, rc = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        per[v] = {"precision": pr, "recall": rc, "f1": _f1(pr, rc), "tp": tp, "fp": fp, "fn": fn, "support": tp + fn}
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    pr, rc = _ratio(tp_all, tp_all + fp_all), _ratio(tp_all, tp_all + fn_all)
    d_tp = sum(confusion[a][b] for a in VERDICTS for b in VERDICTS)
    d_fp = sum(confusion["none"][b] for b in VERDICTS)
    d_fn = sum(confusion[a]["none"] for a in VERDICTS)
    dp, dr = _ratio(d_tp, d_tp + d_fp), _ratio(d_tp, d_tp + d_fn)
    return {
        "per_verdict": per,
        "overall": {"precision": pr, "recall": rc, "f1": _f1(pr, rc), "tp": tp_all, "fp": fp_all, "fn": fn_all},
        "detection": {"precision": dp, "recall": dr, "f1": _f1(dp, dr), "tp": d_tp, "fp": d_fp, "fn": d_fn},
        "confusion": confusion,
        "n": len(keys),
    }


def _check_verdicts(mapping: dict[str, Any], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in mapping.items():
        if v not in LABELS:
            raise InputError(f"{what}: {k!r} has unknown verdict {v!r}", hint=f"use one of {', '.join(LABELS)}")
        if v != "none":
            out[str(k)] = v
    return out


def _norm_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(str(text).strip()))
    except ValueError:
        return str(text)


def findings_verdicts(findings: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(org_id -> verdict, host IP -> verdict) from a findings.json document."""
    if not isinstance(findings, dict) or not isinstance(findings.get("organizations"), list):
        raise InputError("findings has no 'organizations' list", hint="pass a sightline findings.json")
    orgs: dict[str, str] = {}
    hosts: dict[str, str] = {}
    rank = {v: i for i, v in enumerate(reversed(LABELS))}
    for i, o in enumerate(findings["organizations"]):
        if not isinstance(o, dict) or "org_id" not in o or "verdict" not in o:
            raise InputError(f"findings organization #{i} lacks org_id or verdict", position=i)
        orgs.update(_check_verdicts({str(o["org_id"]): o["verdict"]}, "findings"))
        for h in o.get("hosts") or []:
            if isinstance(h, dict) and "ip" in h and "verdict" in h:
                ip = _norm_ip(h["ip"])
                v = _check_verdicts({ip: h["verdict"]}, "findings host")
                if ip in v and rank[v[ip]] > rank.get(hosts.get(ip, "none"), 0):
                    hosts[ip] = v[ip]
    return orgs, hosts


def evaluate(truth: dict[str, Any], findings: dict[str, Any]) -> dict[str, Any]:
    """Organization-level (and host-level, when the truth has hosts) scores of ``findings``.

    Parameters
    ----------
    truth
        A ``truth.json`` document: ``{"organizations": {org_id: verdict}}``, optionally
        ``hosts`` ({ip: verdict}) and ``universe`` (all org ids, for true negatives).
    findings
        A ``findings.json`` document (design.md); organizations with verdict none are absent.

    Returns
    -------
    dict
        ``{"organizations": scores, "hosts": scores or None}``; see :func:`prf`.
    """
    if not isinstance(truth, dict) or not isinstance(truth.get("organizations"), dict):
        raise InputError(
            "truth has no 'organizations' mapping", hint="pass a truth.json written by `sightline simulate`"
        )
    t_orgs = _check_verdicts(truth["organizations"], "truth")
    p_orgs, p_hosts = findings_verdicts(findings)
    universe = set(map(str, truth.get("universe") or []))
    result: dict[str, Any] = {"organizations": prf(t_orgs, p_orgs, universe), "hosts": None}
    if isinstance(truth.get("hosts"), dict):
        t_hosts = {_norm_ip(k): v for k, v in _check_verdicts(truth["hosts"], "truth hosts").items()}
        result["hosts"] = prf(t_hosts, p_hosts)
    return result


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _level_tables(name: str, s: dict[str, Any]) -> list[Table]:
    t = Table(title=f"{name}: precision / recall / F1", title_justify="left")
    for col in ("verdict", "precision", "recall", "F1", "TP", "FP", "FN"):
        t.add_column(col, justify="left" if col == "verdict" else "right")
    rows = [(v, s["per_verdict"][v]) for v in VERDICTS] + [
        ("overall (exact verdict)", s["overall"]),
        ("detection (any verdict)", s["detection"]),
    ]
    for label, r in rows:
        t.add_row(
            label, _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1"]), str(r["tp"]), str(r["fp"]), str(r["fn"])
        )
    c = Table(title=f"{name}: confusion (rows truth, columns found)", title_justify="left")
    c.add_column("truth \\ found")
    for b in LABELS:
        c.add_column(b, justify="right")
    for a in LABELS:
        c.add_row(a, *(str(s["confusion"][a][b]) for b in LABELS))
    return [t, c]


def render_table(result: dict[str, Any]) -> Group:
    """A rich renderable of :func:`evaluate`'s result."""
    parts = _level_tables("organizations", result["organizations"])
    if result.get("hosts"):
        parts += _level_tables("hosts", result["hosts"])
    return Group(*parts)


__all__ = ["VERDICTS", "LABELS", "prf", "findings_verdicts", "evaluate", "render_table"]
