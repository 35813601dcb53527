"""A TCP forwarder that can drop packets: a network partition a test switches on and off.

`blackhole()` stops forwarding in both directions and stops reading, but keeps
every socket open, and accepts new connections without ever answering them:
to the client the server went silent (packets dropped), so its reads hang until
its own timeout instead of failing at once with a reset.  `heal()` resumes:
bytes sent meanwhile (they waited in the kernel's buffers) are delivered, and
held connections are connected through, as TCP retransmission would do after
a real partition.  One selector thread; every change is applied under a lock,
so nothing is forwarded once `blackhole()` has returned.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from dataclasses import dataclass

CHUNK = 65536
SEND_TIMEOUT = 5.0  # a peer that stops reading loses its connection rather than stall the loop


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket | None = None  # None: accepted during a blackhole, not connected yet


class Proxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._blackholed = False
        self._reading = False  # whether the pairs' sockets are registered with the selector
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- control (any thread) ------------------------------------------------------------

    def blackhole(self) -> None:
        """Drop everything from now on; when this returns no byte is forwarded any more."""
        with self._lock:
            self._blackholed = True
        self._wake()

    def heal(self) -> None:
        with self._lock:
            self._blackholed = False
        self._wake()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(5)
        for pair in self._pairs:
            self._close_pair(pair)
        self._pairs.clear()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- the loop (its own thread) -------------------------------------------------------

    def _loop(self) -> None:
        while True:
            events = self._selector.select(timeout=1.0)
            with self._lock:
                if self._closed:
                    return
                self._sync_reading()
                for key, _ in events:
                    sock = key.fileobj
                    if sock is self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(CHUNK)
                    elif sock is self._listener:
                        self._accept()
                    elif not self._blackholed and key.data is not None:
                        self._forward(key.data, sock)

    def _sync_reading(self) -> None:
        """Stop reading every connection in a blackhole; on healing connect the held ones."""
        if self._blackholed and self._reading:
            for pair in self._pairs:
                for sock in (pair.client, pair.upstream):
                    if sock is not None:
                        self._selector.unregister(sock)
            self._reading = False
        elif not self._blackholed and not self._reading:
            for pair in list(self._pairs):
                if pair.upstream is None and not self._connect(pair):
                    continue
                self._watch(pair)
            self._reading = True

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        client.settimeout(SEND_TIMEOUT)
        pair = _Pair(client)
        self._pairs.append(pair)
        if not self._blackholed and self._connect(pair):
            self._watch(pair)

    def _connect(self, pair: _Pair) -> bool:
        try:
            pair.upstream = socket.create_connection(self.upstream, timeout=SEND_TIMEOUT)
        except OSError:
            self._drop(pair)
            return False
        return True

    def _watch(self, pair: _Pair) -> None:
        self._selector.register(pair.client, selectors.EVENT_READ, pair)
        self._selector.register(pair.upstream, selectors.EVENT_READ, pair)

    def _forward(self, pair: _Pair, source: socket.socket) -> None:
        target = pair.upstream if source is pair.client else pair.client
        try:
            data = source.recv(CHUNK)
            if data:
                target.sendall(data)
                return
        except OSError:
            pass
        self._drop(pair)

    def _drop(self, pair: _Pair) -> None:
        for sock in (pair.client, pair.upstream):
            if sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
        self._close_pair(pair)
        with contextlib.suppress(ValueError):
            self._pairs.remove(pair)

    @staticmethod
    def _close_pair(pair: _Pair) -> None:
        for sock in (pair.client, pair.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
