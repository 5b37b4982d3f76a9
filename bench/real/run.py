"""`make eval-real`: sightline's organization verdicts on real public labelled captures.

For each case of bench/real/cases.toml: a fresh temporary workspace, the case's intel CSV and
orgs CSV written into it, then the real CLI as a user runs it::

    sightline hunt --telemetry <files> --intel intel.csv --orgs orgs.csv \
                   --geo geo/asn-ipv4.csv --geo geo/country-ipv4.csv --out out --workspace ws

and out/findings.json (design.md's contract) is compared with the case's truth.  Prints one row
per (case, organization) -- every organization in the truth plus every organization the findings
name -- with expected and found verdict, confidence, OK/WRONG and, when wrong, the decisive
evidence rows; then precision/recall/F1 per verdict, overall (exact verdict) and for detection
(any verdict vs none) over all cases, using sightline.evaluate.prf.  Writes results.json
(gitignored) and RESULTS.md (committed; only a run of all cases rewrites it unless --markdown).

Exit codes: 0 measured (also when verdicts are wrong); 1 with --strict when a case is wrong;
2 harness error (missing data, bad cases.toml, no findings.json).

Usage: python -m bench.real.run [--case NAME ...] [--strict] [--from DIR ...] [--no-fetch]
       [--keep DIR] [--results PATH] [--markdown PATH] [--sightline CMD]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sightline.evaluate import LABELS, VERDICTS, prf

from .cases import CaseError, case_telemetry, load_cases, write_inputs
from .facts import facts, load_all, render
from .fetch import DEFAULT_FROM, FetchError, fetch, load_sources

HERE = Path(__file__).resolve().parent
GEO = [HERE / "geo" / "asn-ipv4.csv", HERE / "geo" / "country-ipv4.csv"]
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"


class HarnessError(Exception):
    pass


def _sightline(cmd: str | None) -> list[str]:
    if cmd:
        return shlex.split(cmd)
    exe = Path(sys.executable).with_name("sightline")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from sightline.cli import main; main()"]


# --- scoring (pure functions: the test suite checks these on made-up findings) -------------------


def found_verdicts(findings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """org_id -> {verdict, confidence, org} for the organizations a findings.json names."""
    if not isinstance(findings, dict) or not isinstance(findings.get("organizations"), list):
        raise HarnessError("findings.json has no 'organizations' list")
    out: dict[str, dict[str, Any]] = {}
    for o in findings["organizations"]:
        if not isinstance(o, dict) or "org_id" not in o or o.get("verdict") not in LABELS:
            raise HarnessError(f"findings.json organization without org_id or a known verdict: {str(o)[:200]}")
        out[str(o["org_id"])] = {"verdict": o["verdict"], "confidence": o.get("confidence"), "org": o}
    return out


def _evidence_summary(org: dict[str, Any], limit: int = 3) -> list[str]:
    """The decisive evidence rows of an organization (else its strongest), as short text."""
    rows = [e for h in org.get("hosts") or [] for e in (h.get("evidence") or [])]
    decisive = [e for e in rows if e.get("decisive", True)] or rows
    decisive.sort(key=lambda e: (-(e.get("score") or 0), -(e.get("flows") or 0)))
    out = []
    for e in decisive[:limit]:
        out.append(
            f"{e.get('behaviour')} {e.get('direction')} indicator {e.get('indicator')} port {e.get('dst_port')}"
            f" flows {e.get('flows')} score {e.get('score')}: {e.get('detail')}"
        )
    if len(decisive) > limit:
        out.append(f"... {len(decisive) - limit} more evidence rows")
    return out


def score_case(case: dict[str, Any], findings: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per organization in the truth (incl. truth none) or in the findings."""
    found = found_verdicts(findings)
    truth_rows = {t["org"]: t for t in case["truth"]}
    rows = []
    for org_id in list(truth_rows) + sorted(set(found) - set(truth_rows)):
        t = truth_rows.get(org_id)
        expected = t["verdict"] if t else "none"
        f = found.get(org_id)
        got = f["verdict"] if f else "none"
        row: dict[str, Any] = {
            "case": case["name"],
            "class": case["class"],
            "org": org_id,
            "expected": expected,
            "found": got,
            "confidence": f["confidence"] if f else None,
            "ok": expected == got,
            "why_truth": t.get("why_rendered", t.get("why"))
            if t
            else "not in the truth: an organization the findings name (truth none)",
        }
        if not row["ok"]:
            if f:
                row["why_wrong"] = _evidence_summary(f["org"])
            else:
                stale = [s for s in findings.get("stale_matches") or [] if isinstance(s, dict)]
                supp = [s for s in findings.get("suppressed") or [] if isinstance(s, dict)]
                row["why_wrong"] = [
                    f"no finding for {org_id}; findings name {len(found)} organization(s)"
                    f" ({', '.join(sorted(found)) or 'none'}), {len(stale)} stale match(es),"
                    f" {len(supp)} suppressed"
                ]
        rows.append(row)
    return rows


def metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """sightline.evaluate.prf over all rows, keyed case::org (truth none rows count as negatives)."""
    truth = {f"{r['case']}::{r['org']}": r["expected"] for r in rows if r["expected"] != "none"}
    pred = {f"{r['case']}::{r['org']}": r["found"] for r in rows if r["found"] not in ("none", "error")}
    universe = {f"{r['case']}::{r['org']}" for r in rows}
    return prf(truth, pred, universe)


# --- running ------------------------------------------------------------------------------------


def run_case(case: dict[str, Any], exe: list[str], work: Path, log=print) -> dict[str, Any]:
    """Hunt one case in ``work`` (a fresh directory); returns its rows, findings and timing."""
    telemetry = case_telemetry(case)
    for p in telemetry:
        if not p.exists():
            raise HarnessError(f"case {case['name']}: telemetry {p} is missing; run `python -m bench.real.fetch`")
    table = load_all(telemetry)
    for t in case["truth"]:
        sel = t["select"]
        values = facts(table, sel)
        shown = {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in sel.items()}
        t["facts"] = values
        t["why_rendered"] = render(t["why"], values, shown)
        if not values["flows"]:
            raise HarnessError(f"case {case['name']}: truth for {t['org']} selects no flows ({sel})")
    intel, orgs = write_inputs(case, work / "inputs")
    out, ws = work / "out", work / "ws"
    cmd = [
        *exe,
        "hunt",
        "--telemetry",
        *map(str, telemetry),
        "--intel",
        str(intel),
        "--orgs",
        str(orgs),
        "--out",
        str(out),
        "--workspace",
        str(ws),
    ]
    if case.get("geo", True):
        for g in GEO:
            cmd += ["--geo", str(g)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    secs = round(time.perf_counter() - t0, 2)
    result: dict[str, Any] = {
        "case": case["name"],
        "class": case["class"],
        "summary": case["summary"],
        "labels": case.get("labels"),
        "notes": case.get("notes"),
        "command": " ".join(shlex.quote(c) for c in cmd),
        "exit_code": proc.returncode,
        "seconds": secs,
        "intel": case["intel"],
        "orgs": case["orgs"],
        "truth": [{k: v for k, v in t.items() if k != "why"} for t in case["truth"]],
    }
    fpath = out / "findings.json"
    if proc.returncode not in (0, 1) or not fpath.exists():
        # sightline failed on real data: a wrong result for this case, not a harness error
        tail = (proc.stderr or proc.stdout or "")[-1500:]
        result["error"] = f"sightline hunt exited {proc.returncode}: {tail}"
        result["rows"] = [
            {
                "case": case["name"],
                "class": case["class"],
                "org": t["org"],
                "expected": t["verdict"],
                "found": "error",
                "confidence": None,
                "ok": False,
                "why_truth": t["why_rendered"],
                "why_wrong": [result["error"][:300]],
            }
            for t in case["truth"]
        ]
        return result
    try:
        findings = json.loads(fpath.read_text())
    except (OSError, ValueError) as e:
        raise HarnessError(f"case {case['name']}: cannot read {fpath}: {e}") from e
    result["rows"] = score_case(case, findings)
    result["inputs"] = findings.get("inputs")
    result["stale_matches"] = len(findings.get("stale_matches") or [])
    return result


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def render_text(results: list[dict[str, Any]], m: dict[str, Any]) -> str:
    rows = [r for res in results for r in res["rows"]]
    lines = []
    w = max([len(r["case"]) for r in rows] + [4])
    wo = max([len(r["org"]) for r in rows] + [3])
    lines.append(f"{'case':<{w}}  {'org':<{wo}}  {'expected':<20} {'found':<20} {'conf':>4}  result")
    for r in rows:
        conf = "" if r["confidence"] is None else str(r["confidence"])
        lines.append(
            f"{r['case']:<{w}}  {r['org']:<{wo}}  {r['expected']:<20} {r['found']:<20} {conf:>4}  "
            f"{'OK' if r['ok'] else 'WRONG'}"
        )
        if not r["ok"]:
            lines.append(f"{'':<{w}}    truth: {r['why_truth']}")
            for wline in r.get("why_wrong", []):
                lines.append(f"{'':<{w}}    sightline: {wline}")
    lines.append("")
    lines += _metric_lines(m)
    cases_ok = sum(all(r["ok"] for r in res["rows"]) for res in results)
    lines.append(
        f"\ncases right: {cases_ok}/{len(results)}; organization rows right: {sum(r['ok'] for r in rows)}/{len(rows)}"
    )
    return "\n".join(lines)


def _metric_lines(m: dict[str, Any], md: bool = False) -> list[str]:
    out = []
    if md:
        out += ["| verdict | precision | recall | F1 | TP | FP | FN |", "|---|---|---|---|---|---|---|"]
    else:
        out.append(f"{'verdict':<26} {'precision':>9} {'recall':>7} {'F1':>6} {'TP':>4} {'FP':>4} {'FN':>4}")
    items = [(v, m["per_verdict"][v]) for v in VERDICTS] + [
        ("overall (exact verdict)", m["overall"]),
        ("detection (any verdict)", m["detection"]),
    ]
    for name, s in items:
        if md:
            out.append(
                f"| {name} | {_fmt(s['precision'])} | {_fmt(s['recall'])} | {_fmt(s['f1'])} | {s['tp']} "
                f"| {s['fp']} | {s['fn']} |"
            )
        else:
            out.append(
                f"{name:<26} {_fmt(s['precision']):>9} {_fmt(s['recall']):>7} {_fmt(s['f1']):>6} "
                f"{s['tp']:>4} {s['fp']:>4} {s['fn']:>4}"
            )
    return out


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(results: list[dict[str, Any]], m: dict[str, Any], meta: dict[str, Any]) -> str:
    rows = [r for res in results for r in res["rows"]]
    cases_ok = sum(all(r["ok"] for r in res["rows"]) for res in results)
    out = [
        "# sightline on real labelled captures (`make eval-real`)",
        "",
        f"Generated by `python -m bench.real.run` at {meta['generated_at']} with sightline "
        f"{meta['sightline_version']} (commit {meta['commit']}). Regenerated by every full run; do not edit.",
        "Data, provenance and licences: [SOURCES.md](SOURCES.md); cases and truth: [cases.toml](cases.toml).",
        "",
        f"**Cases right: {cases_ok}/{len(results)}**; organization rows right: "
        f"{sum(r['ok'] for r in rows)}/{len(rows)}.",
        "",
        "## Scores (every organization in the truth or in the findings, all cases)",
        "",
    ]
    out += _metric_lines(m, md=True)
    out += [
        "",
        "## Per case",
        "",
        "| case | class | organization | expected | found | conf | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        conf = "" if r["confidence"] is None else r["confidence"]
        out.append(
            f"| {r['case']} | {r['class']} | {_md_cell(r['org'])} | {r['expected']} | {r['found']} | {conf} | "
            f"{'OK' if r['ok'] else '**WRONG**'} |"
        )
    out += ["", "## Truth and, where wrong, what sightline said", ""]
    for res in results:
        out.append(f"### {res['case']} ({res['class']})")
        out.append("")
        out.append(f"{_md_cell(res['summary'])}. Labels: {_md_cell(res.get('labels') or '-')}.")
        if res.get("notes"):
            out.append(f"Note: {_md_cell(res['notes'])}")
        out.append("")
        for r in res["rows"]:
            mark = "OK" if r["ok"] else "WRONG"
            out.append(
                f"- **{_md_cell(r['org'])}**: expected {r['expected']}, found {r['found']} ({mark}). "
                f"Truth: {_md_cell(r['why_truth'])}"
            )
            for wline in r.get("why_wrong", []):
                out.append(f"  - sightline: {_md_cell(wline)}")
        out.append("")
    return "\n".join(out) + "\n"


def _meta() -> dict[str, Any]:
    try:
        import sightline

        version = getattr(sightline, "__version__", "?")
    except ImportError:  # pragma: no cover
        version = "?"
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
            ).stdout.strip()
            or "?"
        )
    except OSError:
        commit = "?"
    return {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sightline_version": version,
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", default=None, help="run only this case (repeatable)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when any case is wrong")
    ap.add_argument(
        "--from",
        dest="froms",
        action="append",
        type=Path,
        default=None,
        help="where fetch may copy sources from (see bench.real.fetch)",
    )
    ap.add_argument("--no-fetch", action="store_true", help="use only sources already present")
    ap.add_argument("--keep", type=Path, default=None, help="keep each case's workspace under this directory")
    ap.add_argument("--results", type=Path, default=RESULTS_JSON)
    ap.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help=f"write the markdown summary here (default {RESULTS_MD.name} on a run of all cases)",
    )
    ap.add_argument("--sightline", default=None, help="command that runs sightline (default: the venv's)")
    args = ap.parse_args(argv)
    try:
        cases = load_cases()
        if args.case:
            names = {c["name"] for c in cases}
            unknown = [n for n in args.case if n not in names]
            if unknown:
                raise HarnessError(f"unknown case(s) {unknown}; known: {', '.join(sorted(names))}")
            cases = [c for c in cases if c["name"] in args.case]
        sources = load_sources()
        needed = {sid: sources[sid] for c in cases for sid in c["telemetry"]}
        froms = args.froms if args.froms is not None else [p for p in DEFAULT_FROM if p.is_dir()]
        fetch(needed, froms, offline=args.no_fetch, log=lambda s: print(s, file=sys.stderr))
        for g in GEO:
            if not g.exists():
                raise HarnessError(f"{g} is missing; regenerate it with `python -m bench.real.make_geo`")
        exe = _sightline(args.sightline)
        results = []
        for case in cases:
            if args.keep:
                work = args.keep / case["name"]
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                results.append(run_case(case, exe, work))
            else:
                with tempfile.TemporaryDirectory(prefix=f"eval-real-{case['name']}-") as tmp:
                    results.append(run_case(case, exe, Path(tmp)))
            bad = sum(not r["ok"] for r in results[-1]["rows"])
            print(
                f"{case['name']}: {'OK' if not bad else f'{bad} wrong'} ({results[-1]['seconds']} s)", file=sys.stderr
            )
    except (HarnessError, CaseError, FetchError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = [r for res in results for r in res["rows"]]
    m = metrics(rows)
    print(render_text(results, m))
    meta = _meta()
    doc = {"schema": "sightline.eval-real/1", **meta, "cases": results, "rows": rows, "metrics": m}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    md = args.markdown if args.markdown else (RESULTS_MD if not args.case else None)
    if md:
        md.write_text(render_markdown(results, m, meta))
    wrong = any(not r["ok"] for r in rows)
    return 1 if (args.strict and wrong) else 0


if __name__ == "__main__":
    sys.exit(main())
