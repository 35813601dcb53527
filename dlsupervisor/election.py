"""One active scheduler per database (architecture.md, invariant 6), and its three backends.

With Redis (RedisElection): a key holding the leader's id with a TTL, renewed
every third of the TTL (not every pass: an idle scheduler then makes one round
trip a pass, its check for work), so a dead leader's lease runs out.  Without
Redis: MySQL's GET_LOCK on the scheduler's connection (StoreElection, through
the store's lead/unlead: the SQL stays in the store), or for SQLite an flock on
a file beside the database (FileLock, held by the SQLite store), released when
the holder's connection or process goes.  A short overlap of two leaders is
harmless: every transition is conditional (invariant 2).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import redis

from dlsupervisor.config import Settings
from dlsupervisor.errors import QueueUnavailable, StoreUnavailable
from dlsupervisor.registry import RedisClientHolder

# Keep the lease (ms) if it is still ours, else take it if free.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Election(Protocol):
    def hold(self) -> bool: ...
    def release(self) -> None: ...


class LockStore(Protocol):
    """A store that holds a named lock for as long as its connection (or process) lives."""

    def lead(self, name: str, ttl: float) -> bool: ...
    def unlead(self, name: str) -> None: ...


def identity() -> str:
    """host:pid plus a random part: unique even for two electors in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisElection:
    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        self._key = key
        self._ttl_ms = max(int(ttl * 1000), 1000)
        self._id = identity()
        self._renew_at = 0.0  # monotonic; before it, the lease held at the last renewal still runs
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)

    def hold(self) -> bool:
        now = time.monotonic()
        if now < self._renew_at:
            return True
        try:
            held = bool(self._hold(keys=[self._key], args=[self._id, self._ttl_ms]))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc
        self._renew_at = now + self._ttl_ms / 3000 if held else 0.0
        return held

    def release(self) -> None:
        self._renew_at = 0.0
        try:
            self._release(keys=[self._key], args=[self._id])
        except redis.exceptions.RedisError:
            pass  # the TTL releases it


class StoreElection:
    """The store's own lock: GET_LOCK on MySQL, the SQLite store's FileLock."""

    def __init__(self, store: LockStore, name: str, ttl: float) -> None:
        self._store = store
        self._name = name
        self._ttl = ttl

    def hold(self) -> bool:
        return self._store.lead(self._name, self._ttl)

    def release(self) -> None:
        self._store.unlead(self._name)


class FileLock:
    """An exclusive flock on a file, for one process: a forked child never holds its parent's.

    The kernel releases it when the holding process dies, so it needs no TTL.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = os.getpid()  # the process that owns _fd

    def _after_fork(self) -> None:
        if self._pid == os.getpid():
            return
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # our copy only: the parent's flock stays
            self._fd = None
        self._pid = os.getpid()

    def hold(self, note: str = "") -> bool:
        """Take the lock if free; True while this process holds it."""
        self._after_fork()
        if self._fd is not None:
            return True
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(f"scheduler lock {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        with contextlib.suppress(OSError):  # for operators: who holds it
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()}:{os.getpid()} {note}\n".encode())
        return True

    def release(self) -> None:
        self._after_fork()
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)


def open_election(settings: Settings, store: LockStore, work_queue: RedisClientHolder | Any) -> Election:
    """The scheduler's election for this configuration, wherever the scheduler runs.

    The daemon's scheduler child and the standalone scheduler script must compete
    for the same lock, so both build it here.
    """
    ttl = min(settings.scheduler.lease, 10.0)
    if settings.redis is not None:
        return RedisElection(work_queue.client, f"{settings.redis.key_prefix}scheduler", ttl)
    name = f"dlsupervisor:{settings.database.name or settings.database.path}"[-64:]
    return StoreElection(store, name, ttl)
