"""The TCP side shared by the Postfix adapters: listen, bound, time out, close.

Postfix keeps policy and socketmap connections open and reuses them, one per
smtpd (or cleanup, trivial-rewrite) process, so a busy MTA holds about
``default_process_limit`` of them. Each connection reads under a request
size limit (the StreamReader ``limit``) and an idle timeout; beyond
``max_connections`` new connections are closed at once, which Postfix
reports and then treats per its default action.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class ConnectionLimits:
    # Longer than Postfix's smtpd_policy_service_max_idle (300 s), so that
    # Postfix, not us, closes an idle connection and never writes into one
    # we just closed.
    idle_timeout: float = 330.0
    max_connections: int = 1000


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


class TcpService(ABC):
    """An asyncio TCP server that hands each connection to :meth:`serve_connection`."""

    name = "tcp"

    def __init__(self, limits: ConnectionLimits | None, read_limit: int) -> None:
        self.limits = limits or ConnectionLimits()
        self.read_limit = read_limit
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def connections(self) -> int:
        return len(self._writers)

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens (the real port when started on port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError(f"{self.name} is not listening")
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, host, port, limit=self.read_limit)
        log.info("%s listening on %s:%d", self.name, *self.address)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self._writers) >= self.limits.max_connections:
            log.warning(
                "%s: refused a connection from %s: %d connections already open",
                self.name,
                peer,
                len(self._writers),
            )
            writer.close()
            return
        self._writers.add(writer)
        try:
            await self.serve_connection(reader, writer)
        except TimeoutError:
            log.debug("%s: closed idle connection from %s", self.name, peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.debug("%s: connection from %s ended mid-request", self.name, peer)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @abstractmethod
    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer requests on one connection until EOF."""
