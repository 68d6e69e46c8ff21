"""HTTPS for the sandbox: an asyncio TLS front that hands each decrypted connection to waitress.

waitress has no TLS of its own (its authors advise a proxy in front), so ``serve --tls-cert --tls-key``
runs that proxy in the same process: an asyncio server on the public address does the TLS handshake
(bounded by ``handshake_timeout``) and pipes the plain bytes to waitress on a private loopback port, whose
``wsgi.url_scheme`` is ``https`` (so the signed ``@target-uri`` matches). An idle or slow TLS client costs
a coroutine, never a worker thread; once decrypted, waitress's own connection limit and timeouts apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from pathlib import Path
from typing import Final

_CHUNK: Final = 64 * 1024


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or later) from PEM files; ``ssl.SSLError``/``OSError`` if bad."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    return context


class TlsFront:
    """Accepts TLS on ``listener`` and pipes each connection to ``backend`` (host, port), in a thread."""

    def __init__(
        self,
        listener: socket.socket,
        context: ssl.SSLContext,
        backend: tuple[str, int],
        *,
        handshake_timeout: float,
        first_byte_timeout: float,
        backlog: int,
    ) -> None:
        self.listener = listener
        self.context = context
        self.backend = backend
        self.handshake_timeout = handshake_timeout
        self.first_byte_timeout = first_byte_timeout
        self.backlog = backlog
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="hwb-sandbox-tls", daemon=True)
        self._started = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(
                self._connection,
                sock=self.listener,
                ssl=self.context,
                ssl_handshake_timeout=self.handshake_timeout,
                backlog=self.backlog,  # asyncio listens again, with 100 unless told
            )
        )
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    async def _connection(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        backend_out: asyncio.StreamWriter | None = None
        try:
            first = await asyncio.wait_for(client_in.read(_CHUNK), self.first_byte_timeout)
            if not first:
                return
            backend_in, backend_out = await asyncio.open_connection(*self.backend)
            backend_out.write(first)
            await asyncio.gather(_pipe(client_in, backend_out), _pipe(backend_in, client_out))
        except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the client went away or never spoke: nothing to answer
        finally:
            for writer in (client_out, backend_out):
                if writer is not None:
                    writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until ``source`` ends or fails, then close ``sink`` (so the other direction ends too)."""
    try:
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            sink.close()
