"""Live NetFlow v5/v9/IPFIX collector: UDP sockets -> flow store, in committed batches.

:class:`Collector` listens on one or more UDP ports (any port accepts any of the three
versions; ``--ipfix-port`` is just a second socket), decodes with
:class:`sightline.ingest.netflow.NetflowDecoder` and commits a batch to the store every
``batch_records`` records or ``rotate_seconds`` seconds, whichever comes first.  Each batch
is one manifest entry (``format: netflow_collector``) written through
:class:`sightline.ingest.store.FlowWriter`, so a reader sees all of a batch or none of it and
``kill -9`` loses at most the batch in memory.  The batch's synthetic content hash is the
sha256 of the collector run id, the batch number and each exporter's sequence range.

Templates, sampling rates and exporter clocks are saved atomically to
``<workspace>/collector/state.json`` after every commit and loaded at start, so data that
arrives right after a restart decodes without waiting for the next template refresh.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import selectors
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..workspace import Workspace, atomic_write_json
from .base import ReaderContext
from .netflow import NetflowDecoder
from .store import FlowWriter

log = logging.getLogger("sightline.collector")

RCVBUF_BYTES = 32 << 20
MAX_DATAGRAM = 65535


@dataclass
class CollectorStats:
    packets: int = 0
    records: int = 0
    rows_committed: int = 0
    batches: int = 0
    quarantined: int = 0
    sampling_rates: dict[str, int] = field(default_factory=dict)


def _sequence(data: bytes) -> int | None:
    if len(data) < 20:
        return None
    v = (data[0] << 8) | data[1]
    off = {5: 16, 9: 12, 10: 8}.get(v)
    return struct.unpack_from(">I", data, off)[0] if off is not None else None


class Collector:
    """UDP NetFlow/IPFIX collector writing committed batches into a workspace.

    Parameters
    ----------
    ws
        Workspace to write to.
    ports
        UDP ports to listen on (0 picks a free port; see :attr:`bound_ports`).
    bind
        Address to bind (``0.0.0.0`` to accept exporters from the network).
    batch_records, rotate_seconds
        Commit a batch when this many records are pending, or this long after the last commit.
    sensor
        Fixed ``sensor`` value (default: each exporter's address).
    """

    def __init__(self, ws: Workspace, ports: list[int], *, bind: str = "127.0.0.1", batch_records: int = 200_000,
                 rotate_seconds: float = 60.0, sensor: str | None = None) -> None:
        if not ports:
            raise ConfigError("the collector needs at least one port", hint="pass --netflow-port N")
        self.ws = ws.ensure()
        self.bind = bind
        self.batch_records = batch_records
        self.rotate_seconds = rotate_seconds
        self.run_id = uuid.uuid4().hex
        self.state_path = ws.root / "collector" / "state.json"
        self.stats = CollectorStats()
        self._ctx = self._new_ctx()
        self.decoder = NetflowDecoder(self._on_bad, source_file="", sensor=sensor)
        from . import sensor_time_offsets

        self.time_offsets = sensor_time_offsets(ws)
        self._load_state()
        self._seq: dict[str, list[int]] = {}
        self._sockets: list[socket.socket] = []
        self.bound_ports: list[int] = []
        for port in ports:
            fam = socket.AF_INET6 if ":" in bind else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_DGRAM)
            for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
                if opt is None:
                    continue
                try:
                    s.setsockopt(socket.SOL_SOCKET, opt, RCVBUF_BYTES)
                    break
                except OSError:
                    continue
            try:
                s.bind((bind, port))
            except OSError as e:
                s.close()
                self.close()
                raise ConfigError(f"cannot listen on UDP {bind}:{port}: {e}",
                                  hint="pick a free port, or run with the rights to bind it") from e
            s.setblocking(False)
            self._sockets.append(s)
            self.bound_ports.append(s.getsockname()[1])
        self.decoder.source_file = f"udp://{bind}:{','.join(map(str, self.bound_ports))}"

    # ------------------------------------------------------------------ state
    def _new_ctx(self) -> ReaderContext:
        return ReaderContext(path=Path(f"collector:{self.run_id}"), stream=io.BytesIO())

    def _on_bad(self, pos: int, reason: str, raw: bytes) -> None:
        self._ctx.quarantine(pos, reason, raw.hex() if raw else "", kind="record")

    def _load_state(self) -> None:
        if not self.state_path.exists():
            return
        try:
            self.decoder.load_state(json.loads(self.state_path.read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            log.warning("collector state %s unreadable (%s); waiting for fresh templates", self.state_path, e)

    def _save_state(self) -> None:
        atomic_write_json(self.state_path, self.decoder.state())

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event | None = None, max_seconds: float | None = None) -> CollectorStats:
        """Receive until ``stop`` is set (or ``max_seconds`` pass); commit what is pending on exit."""
        stop = stop or threading.Event()
        with self.ws.lock():
            self.ws.cleanup_orphans()  # a previous run killed mid-commit left staging behind
        sel = selectors.DefaultSelector()
        for s in self._sockets:
            sel.register(s, selectors.EVENT_READ)
        t_end = time.monotonic() + max_seconds if max_seconds else None
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                now = time.monotonic()
                if t_end is not None and now >= t_end:
                    break
                for key, _ in sel.select(timeout=0.2):
                    self._drain(key.fileobj)  # type: ignore[arg-type]
                now = time.monotonic()
                if self.decoder.pending_records >= self.batch_records or (
                    now - last_commit >= self.rotate_seconds and self.decoder.pending_records
                ):
                    self.commit()
                    last_commit = now
            while True:  # what already sits in the socket buffers is ours too
                got = sum(self._drain(s) for s in self._sockets)
                if self.decoder.pending_records >= self.batch_records:
                    self.commit()
                if not got:
                    break
            self.commit()
        finally:
            sel.close()
            self.close()
        return self.stats

    def _drain(self, sock: socket.socket, limit: int = 4096) -> int:
        """Receive up to ``limit`` datagrams without blocking; returns how many."""
        feed = self.decoder.feed
        seqs = self._seq
        n = 0
        for n in range(1, limit + 1):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return n - 1
            except OSError as e:
                log.warning("receive error: %s", e)
                return n - 1
            self.stats.packets += 1
            exporter = addr[0]
            seq = _sequence(data)
            if seq is not None:
                r = seqs.get(exporter)
                if r is None:
                    seqs[exporter] = [seq, seq]
                else:
                    r[0], r[1] = min(r[0], seq), max(r[1], seq)
            feed(data, exporter, self.stats.packets)
            if self.decoder.pending_records >= self.batch_records:
                return n
        return n

    def commit(self) -> dict[str, Any] | None:
        """Write pending records as one batch (atomically) and save the decoder state."""
        table = self.decoder.flush()
        ctx, self._ctx = self._ctx, self._new_ctx()
        seqs, self._seq = self._seq, {}
        if table.num_rows == 0 and ctx.bad_count == 0:
            self._save_state()
            return None
        self.stats.batches += 1
        ident = json.dumps({"run": self.run_id, "batch": self.stats.batches, "seq": seqs}, sort_keys=True)
        sha = hashlib.sha256(ident.encode()).hexdigest()
        with self.ws.lock():
            writer = FlowWriter(self.ws, sha, self.decoder.source_file, "netflow_collector",
                                time_offsets=self.time_offsets)
            try:
                writer.write(table)
                extra = {"exporters": {k: {"first_seq": v[0], "last_seq": v[1]} for k, v in seqs.items()},
                         "sampling_rates": dict(self.decoder.stats["sampling_rates"]),
                         "quarantined_total": ctx.bad_count}
                entry = writer.commit(ctx.quarantine_table(), extra)
            except BaseException:
                writer.abort()
                raise
            self._save_state()
        self.stats.records = int(self.decoder.stats["records"])
        self.stats.rows_committed += int(entry["rows"])
        self.stats.quarantined += ctx.bad_count
        self.stats.sampling_rates = dict(self.decoder.stats["sampling_rates"])
        log.info("collector batch %d: %d flows, %d quarantined", self.stats.batches, entry["rows"], ctx.bad_count)
        return entry

    def close(self) -> None:
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass
        self._sockets = []


__all__ = ["Collector", "CollectorStats"]
