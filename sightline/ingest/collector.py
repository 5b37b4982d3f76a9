"""Live NetFlow v5/v9/IPFIX collector: UDP sockets -> flow store, in committed batches.

:class:`Collector` listens on one or more UDP ports (any port accepts any of the three
versions; ``--ipfix-port`` is just a second socket), decodes with
:class:`sightline.ingest.netflow.NetflowDecoder` and commits a batch to the store every
``batch_records`` records or ``rotate_seconds`` seconds, whichever comes first.  Each batch
is one manifest entry (``format: netflow_collector``) written through
:class:`sightline.store.FlowWriter`, so a reader sees all of a batch or none of it and
``kill -9`` loses at most the batches not yet committed (the one in memory and the one being
written).  Batches are written by a thread of their own while the sockets keep being read:
sorting and writing a batch takes about a second, longer than a socket buffer of small export
packets lasts at tens of thousands of packets per second.

Loss: NetFlow v9 headers number export packets and v5 headers number flows, per exporter;
each batch records how many of them never arrived (``exporters.<ip>.lost_packets`` /
``lost_records``), the run's totals are in :class:`CollectorStats`, and a batch with losses
logs a warning (raise the socket buffer, ``net.core.rmem_max``, or add collectors).  The batch's synthetic content hash is the
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
import queue
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
from ..store import FlowWriter, Workspace, atomic_write_json
from .base import ReaderContext
from .netflow import NetflowDecoder

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
    lost_packets: int = 0  # NetFlow v9 export packets that never arrived (header sequence gaps)
    lost_records: int = 0  # NetFlow v5 flows that never arrived (flow sequence gaps)
    sampling_rates: dict[str, int] = field(default_factory=dict)


def _sequence(data: bytes) -> tuple[int, int, int] | None:
    """(version, sequence number, units it numbers in this packet) of an export packet header:
    v9 numbers packets (1 each), v5 numbers flows (its record count), IPFIX numbers data records
    (not countable from the header: 0)."""
    if len(data) < 20:
        return None
    v = (data[0] << 8) | data[1]
    off = {5: 16, 9: 12, 10: 8}.get(v)
    if off is None:
        return None
    units = {5: (data[2] << 8) | data[3], 9: 1}.get(v, 0)
    return v, struct.unpack_from(">I", data, off)[0], units


def _lost(seq: list[int]) -> int:
    """Units missing between the first and last sequence numbers seen ([first, last, units of the
    last packet, units received]); 0 when the numbering restarted or wrapped (cannot tell)."""
    first, last, last_units, got = seq
    expected = last - first + last_units
    return max(0, expected - got) if 0 < expected < (1 << 31) else 0


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

    def __init__(
        self,
        ws: Workspace,
        ports: list[int],
        *,
        bind: str = "127.0.0.1",
        batch_records: int = 200_000,
        rotate_seconds: float = 60.0,
        sensor: str | None = None,
    ) -> None:
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
        self._seq: dict[tuple[str, int], list[int]] = {}
        self._stats_lock = threading.Lock()
        self._batches: queue.Queue = queue.Queue(maxsize=1)  # one written while the next fills
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
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
                raise ConfigError(
                    f"cannot listen on UDP {bind}:{port}: {e}",
                    hint="pick a free port, or run with the rights to bind it",
                ) from e
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
        self._start_writer()
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
                    self.commit(wait=False)
                    last_commit = now
            while True:  # what already sits in the socket buffers is ours too
                got = sum(self._drain(s) for s in self._sockets)
                if self.decoder.pending_records >= self.batch_records:
                    self.commit(wait=False)
                if not got:
                    break
            self.commit(wait=True)
        finally:
            self._stop_writer()
            sel.close()
            self.close()
        if self._writer_error is not None:
            raise self._writer_error
        return self.stats

    # ------------------------------------------------------------------ writer thread
    def _start_writer(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._write_loop, name="sightline-collector-writer", daemon=True)
            self._writer.start()

    def _stop_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            self._batches.put(None)
            self._writer.join()
        self._writer = None

    def _write_loop(self) -> None:
        while True:
            job = self._batches.get()
            try:
                if job is None:
                    return
                if self._writer_error is None:
                    self._write(*job[:-1])
            except BaseException as e:  # surfaced to the receiving thread at its next commit
                self._writer_error = e
                log.error("collector batch not committed: %s", e)
            finally:
                if job is not None and job[-1] is not None:
                    job[-1].set()
                self._batches.task_done()

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
            hdr = _sequence(data)
            if hdr is not None:
                version, seq, units = hdr
                r = seqs.get((exporter, version))
                if r is None:
                    seqs[(exporter, version)] = [seq, seq, units, units]
                else:
                    if seq < r[0]:
                        r[0] = seq
                    if seq >= r[1]:
                        r[1], r[2] = seq, units
                    r[3] += units
            feed(data, exporter, self.stats.packets)
            if self.decoder.pending_records >= self.batch_records:
                return n
        return n

    def commit(self, wait: bool = True) -> None:
        """Hand pending records to the writer thread as one batch (committed atomically, with the
        decoder state saved after it); ``wait`` until it is in the store."""
        if self._writer_error is not None:
            raise self._writer_error
        table = self.decoder.flush()
        ctx, self._ctx = self._ctx, self._new_ctx()
        seqs, self._seq = self._seq, {}
        state = self.decoder.state()
        done = threading.Event() if wait else None
        if table.num_rows == 0 and ctx.bad_count == 0:
            job: tuple = (None, ctx, seqs, state, None, done)
        else:
            self.stats.batches += 1
            job = (table, ctx, seqs, state, self.stats.batches, done)
        started = self._writer is not None and self._writer.is_alive()
        if not started:
            self._start_writer()
        self._batches.put(job)  # blocks while the previous batch is still being written
        if done is not None:
            done.wait()
        if not started:
            self._stop_writer()
        if self._writer_error is not None:
            raise self._writer_error

    def _write(
        self,
        table: Any,
        ctx: ReaderContext,
        seqs: dict[tuple[str, int], list[int]],
        state: dict[str, Any],
        batch: int | None,
    ) -> None:
        if table is None:
            atomic_write_json(self.state_path, state)
            return
        exporters: dict[str, dict[str, int]] = {}
        lost_p = lost_r = 0
        for (ip, version), r in sorted(seqs.items()):
            e = exporters.setdefault(ip, {})
            e.setdefault("first_seq", r[0])  # an exporter speaking two versions: per version below
            e.setdefault("last_seq", r[1])
            e[f"v{version}_seq"] = [r[0], r[1]]
            if version == 9:
                e["lost_packets"] = n = _lost(r)
                lost_p += n
            elif version == 5:
                e["lost_records"] = n = _lost(r)
                lost_r += n
        ident = json.dumps(
            {"run": self.run_id, "batch": batch, "seq": {f"{ip}/v{v}": r[:2] for (ip, v), r in sorted(seqs.items())}},
            sort_keys=True,
        )
        sha = hashlib.sha256(ident.encode()).hexdigest()
        with self.ws.lock():
            writer = FlowWriter(
                self.ws, sha, self.decoder.source_file, "netflow_collector", time_offsets=self.time_offsets
            )
            try:
                writer.write(table)
                extra = {
                    "exporters": exporters,
                    "sampling_rates": dict(self.decoder.stats["sampling_rates"]),
                    "quarantined_total": ctx.bad_count,
                }
                entry = writer.commit(ctx.quarantine_table(), extra)
            except BaseException:
                writer.abort()
                raise
            atomic_write_json(self.state_path, state)
        with self._stats_lock:
            self.stats.records = int(self.decoder.stats["records"])
            self.stats.rows_committed += int(entry["rows"])
            self.stats.quarantined += ctx.bad_count
            self.stats.lost_packets += lost_p
            self.stats.lost_records += lost_r
            self.stats.sampling_rates = dict(self.decoder.stats["sampling_rates"])
        log.info("collector batch %d: %d flows, %d quarantined", batch, entry["rows"], ctx.bad_count)
        if lost_p or lost_r:
            log.warning(
                "collector batch %d: %d export packet(s) / %d flow(s) never arrived (sequence gaps); "
                "raise net.core.rmem_max and the socket buffer, or add collectors",
                batch,
                lost_p,
                lost_r,
            )

    def close(self) -> None:
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass
        self._sockets = []


__all__ = ["Collector", "CollectorStats"]
