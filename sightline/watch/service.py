"""``sightline watch``: follow telemetry directories and intel sources, hunt, alert on changes.

One loop, one step at a time, the position kept in ``<workspace>/watch/state.json`` (written
atomically after every step):

1. intel, when due (``intel_interval``): files of the intel directories that are new or
   changed are added (STIX, MISP events and feed directories, CSV, lists); TAXII collections
   are pulled incrementally (the pull's own ``added_after`` state);
2. telemetry: every file of the telemetry directories that is complete -- rotated (not the
   live ``conn.log`` / ``eve.json`` / ``nfcapd.current.*`` unless ``live``) and settled (the
   same size and modification time on two scans in a row, or not modified for ``settle``
   seconds) -- is ingested, one file at a time, oldest first;
3. hunt: when the flow store or the indicator table changed since the last hunt, the workspace
   is hunted (new flows against all intel; after new intel alone, a retro-hunt of the whole
   history through the indicator index);
4. alerts: each sink's view of the findings (the sharing policy at its clearance) is compared
   with what the sink was told; the changes go to the sink's outbox in the same state write
   that records them as told, then are delivered; a failed delivery stays in the outbox and is
   retried with exponential backoff.

Killed at any point (``kill -9``), a restart repeats nothing and loses nothing: an ingest
that did not commit is redone and one that did is recognised by content; a hunt whose
result was not recorded runs again; an alert is in the outbox until delivered.  The one
window left is between a delivery and the state write after it: that alert is delivered
again after a restart, with the same id (``X-Sightline-Alert-Id``, the syslog ``id``), so a
receiver can drop it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import SightlineError
from ..store import Workspace, atomic_write_json
from .alerts import SeenState, changes
from .sinks import Sink, SinkError, backoff

log = logging.getLogger("sightline.watch")

__all__ = ["WatchOptions", "Watcher", "is_live_name", "STATE_FILE"]

STATE_FILE = "state.json"
_LIVE = (
    re.compile(r"^[A-Za-z0-9_-]+\.log$"),  # Zeek's live logs: conn.log, dns.log (rotated ones carry a time)
    re.compile(r"^eve\.json$"),  # Suricata's live eve.json (rotated: eve.json.1, eve-<time>.json)
    re.compile(r"^nfcapd\.current(\..*)?$"),  # the file nfcapd is writing
)
_TEMP = re.compile(r"(\.tmp|\.part|\.swp|~)$")
_INTEL_SKIP = {"manifest.json", "hashes.csv"}  # MISP feed bookkeeping, not events


def is_live_name(name: str) -> bool:
    """A log a sensor is still writing (by the sensors' naming conventions)."""
    return any(p.match(name) for p in _LIVE)


@dataclass
class WatchOptions:
    telemetry_dirs: list[Path]
    intel_dirs: list[Path] = field(default_factory=list)
    taxii: list[tuple[str, str]] = field(default_factory=list)  # (url, collection)
    taxii_user: str | None = None
    taxii_password: str | None = None
    sinks: list[Sink] = field(default_factory=list)
    poll: float = 5.0
    intel_interval: float = 300.0
    live: bool = False
    settle: float = 10.0
    engine: str = "duckdb"
    sensor: str | None = None
    link_base: str | None = None
    metrics_bind: str = "127.0.0.1"
    metrics_port: int | None = None
    once: bool = False


class Watcher:
    """The watch loop over one workspace (see the module docstring)."""

    def __init__(self, ws: Workspace, opts: WatchOptions) -> None:
        self.ws = ws
        self.opts = opts
        self.dir = ws.root / "watch"
        self.path = self.dir / STATE_FILE
        self.stop = threading.Event()
        self.state = self._load()
        self._pending: dict[str, tuple[int, int]] = {}  # path -> (size, mtime) at the previous scan
        self.newest_seen = 0.0
        self.newest_done = 0.0
        self.last_cycle = 0.0
        self.last_error: str | None = None
        self.started = time.time()
        self._server: ThreadingHTTPServer | None = None
        self._lock_fh: Any = None

    # --- state --------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            st = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            st = {}
        except (OSError, ValueError) as e:
            raise SightlineError(
                f"watch state {self.path} is unreadable: {e}", hint="move it away to start over (alerts repeat)"
            ) from e
        st.setdefault("version", 1)
        st.setdefault("files", {})
        st.setdefault("intel_files", {})
        st.setdefault("last_intel", 0.0)
        st.setdefault("hunted", {})
        st.setdefault("sinks", {})
        st.setdefault("counters", {})
        return st

    def save(self) -> None:
        atomic_write_json(self.path, self.state)

    def _count(self, name: str, n: float = 1) -> None:
        c = self.state["counters"]
        c[name] = c.get(name, 0) + n

    # --- lifecycle ----------------------------------------------------------------------
    def acquire(self) -> None:
        """One watcher per workspace: hold ``watch/.lock`` for the process's life."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.dir / ".lock", "a+")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            fh.close()
            raise SightlineError(
                f"another `sightline watch` runs on {self.ws.root}", hint="stop it first, or use another --workspace"
            ) from e
        self._lock_fh = fh

    def run(self) -> None:
        self.acquire()
        self.ws.ensure()
        if self.opts.metrics_port is not None:
            self.serve_metrics()
        log.info("watch started", extra={"event": "start", "sinks": [s.describe() for s in self.opts.sinks]})
        self.catch_up_new_sinks()
        while not self.stop.is_set():
            try:
                self.cycle()
                self.last_error = None
            except SightlineError as e:
                self.last_error = str(e)
                log.error("cycle failed: %s", e, extra={"event": "error"})
            except Exception as e:  # an engine or disk failure: say so, stay up, try again next cycle
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("cycle failed", extra={"event": "error"})
            if self.opts.once:
                break
            self.stop.wait(self.opts.poll)
        log.info("watch stopped", extra={"event": "stop"})
        if self._server is not None:
            self._server.shutdown()

    def cycle(self) -> None:
        now = time.time()
        if self.opts.intel_dirs or self.opts.taxii:
            if now - float(self.state["last_intel"]) >= self.opts.intel_interval or not self.state["intel_files"]:
                self.pull_intel()
        self.follow_telemetry()
        self.hunt_if_changed()
        self.deliver()
        self.last_cycle = time.time()

    # --- intel ---------------------------------------------------------------------------
    def pull_intel(self) -> None:
        from ..ingest import expand_paths
        from ..intel import add_to_workspace, load_intel_files

        seen = self.state["intel_files"]
        for d in self.opts.intel_dirs:
            if not d.exists():
                continue
            for p in expand_paths([d]):
                if p.name in _INTEL_SKIP or _TEMP.search(p.name):
                    continue
                st = p.stat()
                key = str(p.resolve())
                sig = [st.st_size, st.st_mtime_ns]
                if seen.get(key, {}).get("sig") == sig:
                    continue
                try:
                    load = load_intel_files([p])
                    counts = add_to_workspace(self.ws, load)
                    seen[key] = {"sig": sig, "loaded": sum(r.loaded for r in load.report)}
                    log.info(
                        "intel %s: %s",
                        p,
                        counts,
                        extra={"event": "intel", "path": str(p), "counts": counts},
                    )
                except (SightlineError, ValueError, OSError) as e:
                    seen[key] = {"sig": sig, "error": str(e)}
                    log.warning("intel %s not read: %s", p, e, extra={"event": "intel_error", "path": str(p)})
                self.save()
        for url, collection in self.opts.taxii:
            from ..intel.taxii import pull_collection

            try:
                res = pull_collection(
                    self.ws, url, collection, user=self.opts.taxii_user, password=self.opts.taxii_password
                )
                log.info(
                    "taxii %s %s: %d objects",
                    url,
                    collection,
                    res.objects,
                    extra={"event": "taxii", "objects": res.objects, "collection": collection},
                )
            except SightlineError as e:
                log.warning("taxii %s %s: %s", url, collection, e, extra={"event": "taxii_error"})
        self.state["last_intel"] = time.time()
        self.save()

    # --- telemetry -------------------------------------------------------------------------
    def candidates(self) -> list[tuple[Path, int, int]]:
        """Files of the telemetry directories, oldest first: (path, size, mtime_ns)."""
        found: list[tuple[Path, int, int]] = []
        for d in self.opts.telemetry_dirs:
            if not d.exists():
                continue
            for p in d.rglob("*"):
                name = p.name
                if name.startswith(".") or _TEMP.search(name):
                    continue
                if not self.opts.live and is_live_name(name):
                    continue
                try:
                    st = p.stat()
                except FileNotFoundError:  # rotated away meanwhile
                    continue
                if not p.is_file():
                    continue
                found.append((p, st.st_size, st.st_mtime_ns))
        found.sort(key=lambda x: (x[2], str(x[0])))
        return found

    def follow_telemetry(self) -> None:
        from ..ingest.run import ingest_file, sensor_time_offsets

        files = self.state["files"]
        offsets = sensor_time_offsets(self.ws)
        todo = []
        now = time.time()
        found = self.candidates()
        present = {str(p.resolve()) for p, _, _ in found}
        gone = [k for k in files if k not in present]
        for k in gone:  # rotated away or deleted: a file that comes back is recognised by content
            del files[k]
        for p, size, mtime in found:
            self.newest_seen = max(self.newest_seen, mtime / 1e9)
            key = str(p.resolve())
            done = files.get(key)
            if done and done.get("sig") == [size, mtime]:
                self.newest_done = max(self.newest_done, mtime / 1e9)
                continue
            # settled: unchanged on two scans in a row, or not modified for `settle` seconds
            if self._pending.get(key) != (size, mtime) and now - mtime / 1e9 < self.opts.settle:
                self._pending[key] = (size, mtime)
                continue
            todo.append((p, key, size, mtime))
        for p, key, size, mtime in todo:
            if self.stop.is_set():
                return
            log.info("ingesting %s", p, extra={"event": "ingest_start", "path": str(p)})
            with self.ws.lock():
                self.ws.cleanup_orphans()
                res = ingest_file(self.ws, p, sensor=self.opts.sensor, time_offsets=offsets)
            files[key] = {
                "sig": [size, mtime],
                "rows": res.rows,
                "quarantined": res.quarantined,
                "format": res.format,
                "reason": res.reason or None,
                "at": time.time(),
            }
            self._pending.pop(key, None)
            self._count("flows_ingested", res.rows)
            self._count("quarantined", res.quarantined)
            self._count("files_ingested" if not res.reason or res.skipped else "files_unreadable")
            self.save()
            self.newest_done = max(self.newest_done, mtime / 1e9)
            log.info(
                "ingested %s: %d flows, %d quarantined%s",
                p,
                res.rows,
                res.quarantined,
                f" ({res.reason})" if res.reason else "",
                extra={
                    "event": "ingest",
                    "path": str(p),
                    "flows": res.rows,
                    "quarantined": res.quarantined,
                    "reason": res.reason or None,
                },
            )

    # --- hunting -------------------------------------------------------------------------
    def _stamps(self) -> dict[str, str]:
        out = {}
        for name, p in (("flows", self.ws.manifest_path), ("intel", self.ws.indicators_path)):
            try:
                st = p.stat()
                out[name] = f"{st.st_mtime_ns}:{st.st_size}"
            except FileNotFoundError:
                out[name] = ""
        return out

    def hunt_if_changed(self) -> None:
        from ..pipeline import detect_workspace, new_run, write_run

        stamps = self._stamps()
        before = self.state["hunted"]
        if stamps == before.get("stamps") or not stamps["flows"]:
            return
        retro = stamps["flows"] == (before.get("stamps") or {}).get("flows")
        run = new_run("watch")
        t0 = time.time()
        log.info("%s started", "retro-hunt" if retro else "hunt", extra={"event": "hunt_start", "retro": retro})
        doc = detect_workspace(self.ws, engine_name=self.opts.engine, run=run, index="on" if retro else None)
        write_run(self.ws, run)
        self._count("hunts")
        if retro:
            self._count("retro_hunts")
        log.info(
            "%s: %d organizations",
            "retro-hunt" if retro else "hunt",
            len(doc.organizations),
            extra={"event": "hunt", "retro": retro, "organizations": len(doc.organizations), "s": time.time() - t0},
        )
        self.queue_alerts(doc)
        before["stamps"] = stamps
        before["at"] = time.time()
        before["newest_file"] = self.newest_done
        self.save()  # outboxes, what each sink was told, and that this hunt is done: one write

    # --- alerts --------------------------------------------------------------------------
    def _link(self, kind: str, ident: str) -> str:
        from urllib.parse import quote

        if self.opts.link_base:
            base = self.opts.link_base.rstrip("/")
            return f"{base}/orgs/{quote(ident, safe='')}" if kind == "org" else f"{base}/graph"
        return (self.ws.findings_dir / "latest.json").resolve().as_uri() + f"#{kind}={quote(ident, safe='')}"

    def catch_up_new_sinks(self) -> None:
        """A sink added since the last hunt is told what the workspace's findings hold (once)."""
        new = [s for s in self.opts.sinks if s.name not in self.state["sinks"]]
        latest = self.ws.findings_dir / "latest.json"
        if not new or not self.state["hunted"].get("stamps") or not latest.exists():
            return
        from ..findings.model import from_dict

        try:
            doc = from_dict(json.loads(latest.read_text("utf-8")))
        except (OSError, ValueError) as e:
            log.warning("cannot read %s: %s", latest, e, extra={"event": "error"})
            return
        self.queue_alerts(doc, only=new)
        self.save()

    def queue_alerts(self, doc: Any, only: list[Sink] | None = None) -> None:
        from ..pipeline import read_indicators
        from ..report import prepare

        if not self.opts.sinks:
            return
        indicators = read_indicators(self.ws)
        views: dict[tuple[str, bool], dict[str, Any]] = {}
        for sink in only if only is not None else self.opts.sinks:
            k = (sink.clearance.label, sink.anonymize)
            if k not in views:
                shared, _ = prepare(
                    doc, tlp=sink.clearance.label, anonymize=sink.anonymize, ws=self.ws, indicators=indicators
                )
                views[k] = shared.to_dict()
            st = self.state["sinks"].setdefault(sink.name, {"seen": {}, "outbox": []})
            alerts, seen = changes(views[k], SeenState.from_dict(st["seen"]), link=self._link)
            st["seen"] = seen.to_dict()
            for a in alerts:
                st["outbox"].append(
                    {
                        "alert": a.to_dict(),
                        "attempts": 0,
                        "next_at": 0.0,
                        "queued_at": time.time(),
                        "file": self.newest_done,
                    }
                )
            if alerts:
                log.info("%d alert(s) for %s", len(alerts), sink.name, extra={"event": "alerts", "sink": sink.name})

    def deliver(self) -> None:
        for sink in self.opts.sinks:
            st = self.state["sinks"].get(sink.name)
            if not st or not st["outbox"]:
                continue
            while st["outbox"] and not self.stop.is_set():
                item = st["outbox"][0]
                if item["next_at"] > time.time():
                    break  # in order: later alerts wait for the one being retried
                try:
                    sink.send(item["alert"])
                except SinkError as e:
                    item["attempts"] += 1
                    item["next_at"] = time.time() + backoff(item["attempts"])
                    item["error"] = str(e)
                    self._count("alerts_failed")
                    self._count(f"alerts_failed:{sink.name}")
                    self.save()
                    log.warning(
                        "alert %s to %s failed (attempt %d): %s",
                        item["alert"]["id"],
                        sink.name,
                        item["attempts"],
                        e,
                        extra={"event": "alert_failed", "sink": sink.name, "id": item["alert"]["id"]},
                    )
                    break
                st["outbox"].pop(0)
                self._count("alerts_sent")
                self._count(f"alerts_sent:{sink.name}")
                if item.get("file"):
                    self.state["counters"]["last_file_to_alert_s"] = max(0.0, time.time() - float(item["file"]))
                self.save()
                log.info(
                    "alert %s sent to %s: %s",
                    item["alert"]["id"],
                    sink.name,
                    item["alert"]["summary"],
                    extra={"event": "alert_sent", "sink": sink.name, "id": item["alert"]["id"]},
                )

    # --- health and metrics ----------------------------------------------------------------
    def lag(self) -> float:
        return max(0.0, self.newest_seen - self.newest_done)

    def healthy(self) -> tuple[bool, dict[str, Any]]:
        age = time.time() - self.last_cycle if self.last_cycle else None
        ok = self.last_error is None and (age is None or age < max(60.0, 10 * self.opts.poll))
        if self.last_cycle == 0.0 and time.time() - self.started > max(600.0, 10 * self.opts.poll):
            ok = False
        return ok, {
            "status": "ok" if ok else "unhealthy",
            "last_cycle_age_s": None if age is None else round(age, 3),
            "lag_s": round(self.lag(), 3),
            "error": self.last_error,
            "outbox": {s: len(v.get("outbox", [])) for s, v in self.state["sinks"].items()},
        }

    def metrics_text(self) -> str:
        c = self.state["counters"]
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, v in samples:
                lines.append(f"{name}{labels} {v:g}")

        metric("sightline_watch_flows_ingested_total", "counter", "Flows stored.", [("", c.get("flows_ingested", 0))])
        metric(
            "sightline_watch_files_ingested_total",
            "counter",
            "Telemetry files read.",
            [("", c.get("files_ingested", 0))],
        )
        metric(
            "sightline_watch_quarantined_records_total",
            "counter",
            "Records quarantined at ingest.",
            [("", c.get("quarantined", 0))],
        )
        metric(
            "sightline_watch_lag_seconds",
            "gauge",
            "Newest telemetry file seen minus newest ingested.",
            [("", self.lag())],
        )
        metric("sightline_watch_hunts_total", "counter", "Hunts run (retro-hunts included).", [("", c.get("hunts", 0))])
        metric(
            "sightline_watch_retro_hunts_total",
            "counter",
            "Hunts after new intel alone.",
            [("", c.get("retro_hunts", 0))],
        )
        sinks = [s.name for s in self.opts.sinks]
        metric(
            "sightline_watch_alerts_sent_total",
            "counter",
            "Alerts delivered.",
            [(f'{{sink="{_esc(s)}"}}', c.get(f"alerts_sent:{s}", 0)) for s in sinks] or [("", 0)],
        )
        metric(
            "sightline_watch_alerts_failed_total",
            "counter",
            "Failed alert deliveries (each is retried).",
            [(f'{{sink="{_esc(s)}"}}', c.get(f"alerts_failed:{s}", 0)) for s in sinks] or [("", 0)],
        )
        metric(
            "sightline_watch_alerts_queued",
            "gauge",
            "Alerts waiting for delivery.",
            [(f'{{sink="{_esc(s)}"}}', len(self.state["sinks"].get(s, {}).get("outbox", []))) for s in sinks]
            or [("", 0)],
        )
        metric(
            "sightline_watch_file_to_alert_seconds",
            "gauge",
            "Seconds from the newest file of a hunt being written to its last alert's delivery.",
            [("", c.get("last_file_to_alert_s", 0.0))],
        )
        ok, _ = self.healthy()
        metric("sightline_watch_up", "gauge", "1 when the last cycle succeeded.", [("", 1.0 if ok else 0.0)])
        return "\n".join(lines) + "\n"

    def serve_metrics(self) -> None:
        watcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] == "/healthz":
                    ok, body = watcher.healthy()
                    self._reply(200 if ok else 503, "application/json", json.dumps(body).encode())
                elif self.path.split("?")[0] == "/metrics":
                    self._reply(200, "text/plain; version=0.0.4; charset=utf-8", watcher.metrics_text().encode())
                else:
                    self._reply(404, "text/plain", b"not found\n")

            def _reply(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer((self.opts.metrics_bind, int(self.opts.metrics_port or 0)), Handler)
        host, port = self._server.server_address[:2]
        atomic_write_json(self.dir / "endpoint.json", {"host": host, "port": port, "pid": os.getpid()})
        threading.Thread(target=self._server.serve_forever, name="watch-metrics", daemon=True).start()
        log.info("metrics on http://%s:%d/metrics", host, port, extra={"event": "metrics", "port": port})


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message and the event's fields."""

    _STD = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in self._STD and k not in doc and not k.startswith("_"):
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        with contextlib.suppress(TypeError, ValueError):
            return json.dumps(doc, default=str, ensure_ascii=False)
        return json.dumps({k: str(v) for k, v in doc.items()})
