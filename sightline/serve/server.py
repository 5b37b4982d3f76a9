"""How ``sightline serve`` runs the application: uvicorn with limits against slow clients.

uvicorn closes idle keep-alive connections, but a client that sends its request a byte at a
time (slowloris) holds a connection for as long as it likes, and its keep-alive timer is
cancelled by every byte.  :class:`ReadTimeoutProtocol` gives each request a deadline to arrive
*whole* (headers and body), counted from the connection's start or the previous response, so
trickling clients are cut off after ``header_timeout`` seconds whatever they send.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ReadTimeoutProtocol", "protocol_with_timeout", "server_config", "HEADER_TIMEOUT_S", "LIMIT_CONCURRENCY"]

HEADER_TIMEOUT_S = 10.0
LIMIT_CONCURRENCY = 512
"""Connections and requests at once; beyond, uvicorn answers 503 at once instead of queueing."""


class ReadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for reading each whole request."""

    read_timeout = HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(self.read_timeout, self._expired)

    def _disarm(self) -> None:
        handle = getattr(self, "_read_deadline", None)
        if handle is not None:
            handle.cancel()
            self._read_deadline = None

    def _expired(self) -> None:
        self._read_deadline = None
        # IDLE: the request line or headers are incomplete; SEND_BODY: the body is; anything
        # else means a request is being answered (the next deadline starts after the response)
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_with_timeout(seconds: float) -> type[ReadTimeoutProtocol]:
    """A :class:`ReadTimeoutProtocol` whose requests must arrive whole within ``seconds``."""
    return type("ReadTimeoutProtocol", (ReadTimeoutProtocol,), {"read_timeout": float(seconds)})


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    header_timeout: float = HEADER_TIMEOUT_S,
    limit_concurrency: int = LIMIT_CONCURRENCY,
    **kw: Any,
) -> Any:
    """The uvicorn configuration ``sightline serve`` uses."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_with_timeout(header_timeout),
        log_level=kw.pop("log_level", "warning"),
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=5,
        limit_concurrency=limit_concurrency,
        h11_max_incomplete_event_size=16 * 1024,
        **kw,
    )
