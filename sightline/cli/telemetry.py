"""``sightline collect``: the live NetFlow v5/v9/IPFIX collector."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from rich.markup import escape

from .common import DEFAULT_WS, WorkspaceOpt, console, setup_logging, workspace


def collect(
    netflow_port: Annotated[
        int, typer.Option("--netflow-port", help="UDP port for NetFlow v5/v9 (any version is accepted).")
    ],
    ipfix_port: Annotated[
        int | None, typer.Option("--ipfix-port", help="Second UDP port, e.g. 4739 for IPFIX.")
    ] = None,  # noqa: UP007
    ws_path: WorkspaceOpt = DEFAULT_WS,
    bind: Annotated[
        str, typer.Option("--bind", help="Address to listen on; 0.0.0.0 to accept exporters on the network.")
    ] = "127.0.0.1",
    batch_records: Annotated[
        int, typer.Option("--batch-records", min=1, help="Commit a batch every N records.")
    ] = 200_000,
    rotate_seconds: Annotated[float, typer.Option("--rotate-seconds", min=0.1, help="...or every S seconds.")] = 60.0,
    sensor: Annotated[
        str | None, typer.Option("--sensor", help="Sensor name for the flows (default: exporter address).")
    ] = None,  # noqa: UP007
    max_seconds: Annotated[
        float | None, typer.Option("--max-seconds", help="Stop after S seconds (default: run until SIGTERM/Ctrl-C).")
    ] = None,  # noqa: UP007
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Receive NetFlow/IPFIX over UDP and write flows to the workspace in committed batches."""
    from ..ingest.collector import Collector

    setup_logging(verbose)
    ports = [netflow_port] + ([ipfix_port] if ipfix_port is not None else [])
    col = Collector(
        workspace(ws_path), ports, bind=bind, batch_records=batch_records, rotate_seconds=rotate_seconds, sensor=sensor
    )
    stop = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(f"collecting on UDP {bind}:{','.join(map(str, col.bound_ports))} -> {ws_path}", highlight=False)
    stats = col.run(stop, max_seconds=max_seconds)
    lost = ""
    if stats.lost_packets or stats.lost_records:
        lost = (
            f"; [yellow]never arrived[/] (exporter sequence gaps): {stats.lost_packets} v9 packet(s), "
            f"{stats.lost_records} v5 flow(s) -- raise net.core.rmem_max or add collectors"
        )
    console.print(
        f"stopped: {stats.packets} packets, {stats.rows_committed} flows in {stats.batches} batches, "
        f"{stats.quarantined} quarantined{lost}",
        highlight=False,
    )


def compact_cmd(
    ws_path: WorkspaceOpt = DEFAULT_WS,
    day: Annotated[list[str] | None, typer.Option("--day", help="Only this day (YYYY-MM-DD); repeatable.")] = None,  # noqa: UP007
    min_parts: Annotated[
        int, typer.Option("--min-parts", min=2, help="Compact a day once it has this many parts.")
    ] = 2,
    include_today: Annotated[
        bool, typer.Option("--include-today", help="Also the current UTC day (still being written by a collector).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Merge each day's flow parts into one part sorted for the retro-hunt index.

    Every ingested file and collector batch adds a part per day; a rare address then sits in a
    row group of every part.  Run this on closed days (e.g. nightly): retro-hunts read fewer
    row groups and full scans open fewer files.  Replaced parts stay readable for an hour
    (SIGHTLINE_RETIRE_GRACE_S) for hunts already running.
    """
    import time as _time

    from ..store.compact import compact

    setup_logging(verbose)
    ws = workspace(ws_path)
    t0 = _time.perf_counter()

    def show(d) -> None:  # type: ignore[no-untyped-def]
        console.print(f"{d.day}: {d.parts_in} parts, {d.rows:,} flows -> 1 part ({d.seconds:.1f}s)", highlight=False)

    res = compact(ws, days=day, min_parts=min_parts, include_today=include_today, progress=show)
    if not res.days:
        console.print(f"nothing to compact (no closed day with {min_parts} or more parts)", highlight=False)
    else:
        console.print(
            f"compacted {len(res.days)} day(s): {res.parts_in} parts, {res.rows:,} flows in "
            f"{_time.perf_counter() - t0:.1f}s",
            highlight=False,
        )
    if res.retired_deleted:
        console.print(f"deleted {res.retired_deleted} part(s) retired by an earlier compaction", highlight=False)
    for d, reason in res.failed.items():
        console.print(
            f"[red]{d}: not compacted, its parts stay as they are: {escape(reason)}[/red]\n"
            "  check the disk, or move the unreadable part away and re-ingest its file",
            highlight=False,
        )
    if res.failed:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
    app.command("compact")(compact_cmd)


__all__ = ["register", "collect", "compact_cmd"]
