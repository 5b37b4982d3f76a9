"""The campaign graph: actor infrastructure <-> victim hosts, with clusters and hand-offs.

Built from a reader's view of the findings (``actor_infrastructure``,
``actor_infrastructure_summary`` and the evidence rows, as the sharing policy gave them), laid
out on the server (radial: the actor's servers on an inner ring grouped by cluster, victim
hosts on an outer ring grouped by organization, strongest verdict first) and drawn as one SVG.
``static/graph.js`` adds pan, zoom, search and highlighting; without it the picture still
stands.  Linear in nodes and edges: a 1,000-node campaign is one 300 kB page.
"""

from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup, escape

from ..core.verdicts import VERDICT_RANK
from .investigate import _STRENGTH

__all__ = ["campaign_graph", "layout", "graph_svg", "MAX_NODES"]

MAX_NODES = 5000


def campaign_graph(findings: dict[str, Any], *, org_id: str | None = None) -> dict[str, Any]:
    """Nodes (``actor`` servers, victim ``host`` s) and edges (``contact`` per host x server with
    its strongest behaviour, ``handoff`` between servers) of the findings given."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    servers = {str(a.get("ip")): a for a in findings.get("actor_infrastructure") or []}
    for a in servers.values():
        nodes["a:" + str(a.get("ip"))] = {
            "id": "a:" + str(a.get("ip")),
            "kind": "actor",
            "label": str(a.get("ip")),
            "cluster": a.get("cluster"),
            "roles": a.get("roles") or [],
            "as_org": a.get("as_org"),
            "country": a.get("country"),
            "hosting": a.get("hosting"),
            "tlp": a.get("tlp"),
        }
    for o in findings.get("organizations") or []:
        if org_id is not None and o.get("org_id") != org_id:
            continue
        for h in o.get("hosts") or []:
            hid = "h:" + str(h.get("ip"))
            nodes.setdefault(
                hid,
                {
                    "id": hid,
                    "kind": "host",
                    "label": str(h.get("ip")),
                    "org_id": o.get("org_id"),
                    "org": o.get("name"),
                    "verdict": h.get("verdict"),
                    "org_verdict": o.get("verdict"),
                    "tlp": h.get("tlp"),
                },
            )
            for e in h.get("evidence") or []:
                peer = str(e.get("actor_ip") or e.get("indicator"))
                if peer == str(h.get("ip")):
                    continue  # a victim-owned address named by the intel: no edge to itself
                aid = "a:" + peer
                if aid not in nodes:
                    nodes[aid] = {
                        "id": aid,
                        "kind": "actor",
                        "label": peer,
                        "cluster": None,
                        "roles": [],
                        "tlp": e.get("tlp"),
                    }
                key = (hid, aid, "contact")
                edge = edges.get(key)
                b = str(e.get("behaviour"))
                if edge is None:
                    edges[key] = {
                        "s": hid,
                        "t": aid,
                        "kind": "contact",
                        "behaviour": b,
                        "flows": int(e.get("flows") or 0),
                        "decisive": bool(e.get("decisive")),
                    }
                else:
                    edge["flows"] += int(e.get("flows") or 0)
                    edge["decisive"] = edge["decisive"] or bool(e.get("decisive"))
                    if _STRENGTH.get(b, 99) < _STRENGTH.get(edge["behaviour"], 99):
                        edge["behaviour"] = b
    summary = findings.get("actor_infrastructure_summary") or {}
    hosts_shown = {n["label"] for n in nodes.values() if n["kind"] == "host"}
    for hd in summary.get("handoffs") or []:
        s, t = "a:" + str(hd.get("from")), "a:" + str(hd.get("to"))
        if s in nodes and t in nodes and (org_id is None or str(hd.get("host")) in hosts_shown):
            key = (s, t, "handoff")
            edge = edges.setdefault(key, {"s": s, "t": t, "kind": "handoff", "hosts": []})
            edge["hosts"].append(str(hd.get("host")))
    if org_id is not None:  # only the servers this organization's hosts touched
        touched = {e["t"] for e in edges.values() if e["kind"] == "contact"}
        nodes = {k: v for k, v in nodes.items() if v["kind"] == "host" or k in touched}
        edges = {k: e for k, e in edges.items() if e["s"] in nodes and e["t"] in nodes}
    clusters = [
        {"cluster": c.get("cluster"), "kind": c.get("kind"), "members": c.get("members") or []}
        for c in summary.get("clusters") or []
    ]
    total = len(nodes)
    kept = list(nodes.values())
    if total > MAX_NODES:  # keep the servers and the hosts of the strongest verdicts
        kept.sort(key=lambda n: (n["kind"] != "actor", -VERDICT_RANK.get(str(n.get("verdict")), 0), n["label"]))
        kept = kept[:MAX_NODES]
        ids = {n["id"] for n in kept}
        edges = {k: e for k, e in edges.items() if e["s"] in ids and e["t"] in ids}
    return {"nodes": kept, "edges": list(edges.values()), "clusters": clusters, "total_nodes": total}


def layout(graph: dict[str, Any]) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Positions of every node and the labels of organization and cluster arcs."""
    actors = sorted(
        (n for n in graph["nodes"] if n["kind"] == "actor"),
        key=lambda n: (n.get("cluster") is None, str(n.get("cluster") or ""), n["label"]),
    )
    hosts = sorted(
        (n for n in graph["nodes"] if n["kind"] == "host"),
        key=lambda n: (
            -VERDICT_RANK.get(str(n.get("org_verdict")), 0),
            str(n.get("org_id")),
            -VERDICT_RANK.get(str(n.get("verdict")), 0),
            n["label"],
        ),
    )
    r_a = max(90.0, len(actors) * 16 / (2 * math.pi))
    r_h = max(r_a + 220.0, len(hosts) * 11 / (2 * math.pi))
    pos: dict[str, tuple[float, float]] = {}
    arcs: dict[str, Any] = {"orgs": [], "clusters": [], "r_a": r_a, "r_h": r_h}

    def ring(items: list[dict[str, Any]], r: float, group: str, into: list[dict[str, Any]]) -> None:
        n = max(len(items), 1)
        spans: dict[str, list[float]] = {}
        for i, node in enumerate(items):
            a = 2 * math.pi * i / n - math.pi / 2
            pos[node["id"]] = (r * math.cos(a), r * math.sin(a))
            g = node.get(group)
            if g is not None:
                spans.setdefault(str(g), []).append(a)
        for g, angles in spans.items():
            into.append({"name": g, "angle": sum(angles) / len(angles), "count": len(angles)})

    ring(actors, r_a, "cluster", arcs["clusters"])
    ring(hosts, r_h, "org_id", arcs["orgs"])
    return pos, arcs


def _f(v: float) -> str:
    return f"{v:.1f}"


def graph_svg(graph: dict[str, Any], *, labels: int = 80) -> Markup:
    """The graph as one SVG (classes carry the colours; ``data-*`` attributes feed graph.js)."""
    if not graph["nodes"]:
        return Markup('<p class="muted">No actor infrastructure or victim hosts in what you may see.</p>')
    pos, arcs = layout(graph)
    r = arcs["r_h"] + 160
    parts = [
        f'<svg id="campaign-graph" class="graph" role="img" viewBox="{_f(-r)} {_f(-r)} {_f(2 * r)} {_f(2 * r)}" '
        f'aria-label="actor infrastructure and victim hosts"><title>Actor infrastructure and victim hosts</title>'
        '<g id="graph-view"><g class="edges">'
    ]
    for e in graph["edges"]:
        if e["s"] not in pos or e["t"] not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e["s"]], pos[e["t"]]
        if e["kind"] == "handoff":
            cls = "e handoff"
            title = f"hand-off {e['s'][2:]} -> {e['t'][2:]} ({', '.join(e['hosts'][:5])})"
        else:
            cls = f"e b-{escape(e['behaviour'])}{' decisive' if e['decisive'] else ''}"
            title = f"{e['s'][2:]} {e['behaviour']} {e['t'][2:]}: {e['flows']} flows"
        parts.append(
            f'<line class="{cls}" x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" '
            f'data-s="{escape(e["s"])}" data-t="{escape(e["t"])}"><title>{escape(title)}</title></line>'
        )
    parts.append('</g><g class="nodes">')
    for n in graph["nodes"]:
        x, y = pos[n["id"]]
        if n["kind"] == "actor":
            cls = "n actor"
            info = " · ".join(
                str(v)
                for v in (n.get("cluster"), ", ".join(n.get("roles") or []), n.get("as_org"), n.get("country"))
                if v
            )
            rad = 7
        else:
            cls = f"n host v-{escape(str(n.get('verdict')))}"
            info = f"{n.get('org') or n.get('org_id')} · {str(n.get('verdict') or '').replace('_', ' ')}"
            rad = 4
        parts.append(
            f'<circle class="{cls}" cx="{_f(x)}" cy="{_f(y)}" r="{rad}" data-id="{escape(n["id"])}" '
            f'data-label="{escape(n["label"])}" data-info="{escape(info)}"'
            + (f' data-org="{escape(str(n.get("org_id")))}"' if n["kind"] == "host" else "")
            + f"><title>{escape(n['label'])}: {escape(info)}</title></circle>"
        )
    parts.append('</g><g class="labels">')
    for kind, radius in (("orgs", arcs["r_h"] + 14), ("clusters", arcs["r_a"] - 14)):
        items = sorted(arcs[kind], key=lambda a: -a["count"])[:labels]
        for a in items:
            x, y = radius * math.cos(a["angle"]), radius * math.sin(a["angle"])
            anchor = "start" if math.cos(a["angle"]) >= 0 else "end"
            if kind == "clusters":
                anchor = "end" if anchor == "start" else "start"
            parts.append(
                f'<text class="lbl-{kind}" x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}">'
                f"{escape(a['name'][:40])} ({a['count']})</text>"
            )
    parts.append("</g></g></svg>")
    return Markup("".join(parts))
