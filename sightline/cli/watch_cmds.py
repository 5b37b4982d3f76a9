"""``sightline watch``: the long-running service."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..core.settings import settings
from ..errors import SightlineError
from .common import DEFAULT_ENGINE, DEFAULT_WS, EngineOpt, WorkspaceOpt, fail, workspace


def watch_cmd(
    telemetry_dirs: Annotated[
        list[Path],
        typer.Option(
            "--telemetry-dir",
            "-t",
            help="Directory of rotated telemetry to follow (Zeek logs incl. .gz, nfcapd files, Suricata eve). "
            "Several after one flag, or repeat it.",
        ),
    ],
    intel_dirs: Annotated[
        list[Path] | None,
        typer.Option("--intel-dir", "-i", help="Directory of intel files (STIX, MISP events/feed, CSV) to follow."),
    ] = None,
    taxii: Annotated[
        list[str] | None, typer.Option("--taxii", help="TAXII 2.1 API root to pull (pairs with --collection).")
    ] = None,
    collection: Annotated[list[str] | None, typer.Option("--collection", help="TAXII collection id.")] = None,
    user: Annotated[
        str | None, typer.Option("--user", envvar="SIGHTLINE_TAXII_USER", help="TAXII user (env SIGHTLINE_TAXII_USER).")
    ] = None,
    password_env: Annotated[
        str, typer.Option("--password-env", help="Environment variable holding the TAXII password.")
    ] = "SIGHTLINE_TAXII_PASSWORD",
    sinks: Annotated[
        list[str] | None,
        typer.Option(
            "--sink",
            help="Alert sink as a URL with its TLP clearance (tlp=): webhook+https://..., syslog+udp://..., "
            "syslog+tcp://... (cef=1 for CEF), smtp://...?to=... (STARTTLS); options in the README.",
        ),
    ] = None,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between scans of the directories.")] = 5.0,
    intel_interval: Annotated[
        float, typer.Option("--intel-interval", min=0.0, help="Seconds between intel pulls.")
    ] = 300.0,
    live: Annotated[
        bool,
        typer.Option("--live", help="Also read the live logs (conn.log, eve.json): only what was appended each time."),
    ] = False,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            min=0.0,
            help="A file is read once unchanged on two scans in a row, or not modified for this many seconds.",
        ),
    ] = 10.0,
    sensor: Annotated[str | None, typer.Option("--sensor", help="Sensor name recorded on ingested flows.")] = None,
    link_base: Annotated[
        str | None, typer.Option("--link-base", help="Dashboard URL alerts link to (else the findings file).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=0, help="Serve /healthz and /metrics (Prometheus) on this port (0: any)."),
    ] = None,
    bind: Annotated[str, typer.Option("--bind", help="Address of the metrics endpoint.")] = "127.0.0.1",
    log_json: Annotated[bool, typer.Option("--log-json", help="Log one JSON object per line (stderr).")] = False,
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit (cron, tests).")] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
    engine: EngineOpt = DEFAULT_ENGINE,
) -> None:
    """Follow telemetry directories and intel sources; hunt new flows and retro-hunt after new intel;
    alert each sink on changes at its TLP clearance.  Keeps its position across restarts.

    Example sinks: 'webhook+https://soc.example/hook?tlp=amber&secret_env=HOOK_KEY',
    'syslog+tcp://siem.example:6514?tlp=green&cef=1',
    'smtp://mail.example:587?tlp=amber&to=cert@example.org&from=sightline@example.org'.
    """
    from ..watch import JsonLogFormatter, Watcher, WatchOptions, parse_sink

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter() if log_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, settings().log_level, logging.WARNING))
    logging.getLogger("sightline.watch").setLevel(logging.INFO)
    try:
        if len(taxii or []) != len(collection or []):
            raise SightlineError("each --taxii needs its --collection", hint="--taxii URL --collection ID (in pairs)")
        opts = WatchOptions(
            telemetry_dirs=list(telemetry_dirs),
            intel_dirs=list(intel_dirs or []),
            taxii=list(zip(taxii or [], collection or [], strict=True)),
            taxii_user=user,
            taxii_password=settings().secret(password_env),
            sinks=[parse_sink(s) for s in sinks or []],
            poll=poll,
            intel_interval=intel_interval,
            live=live,
            settle=settle,
            engine=engine,
            sensor=sensor,
            link_base=link_base,
            metrics_bind=bind,
            metrics_port=metrics_port,
            once=once,
        )
        names = [s.name for s in opts.sinks]
        if len(set(names)) != len(names):
            raise SightlineError("two sinks have the same name", hint="add &name=... to tell them apart")
        watcher = Watcher(workspace(ws_path), opts)

        def stop(signum: int, frame: object) -> None:
            watcher.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        watcher.run()
    except SightlineError as e:
        fail(e)


def register(app: typer.Typer) -> None:
    app.command("watch")(watch_cmd)
