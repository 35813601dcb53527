"""Redis as the wake-up channel: one sorted set per subtype.

Key schema (all under `key_prefix`, default `dl:`):

    {prefix}q:{queue_key}   zset    message `i:ID` / `s:ID` -> push time (ms); ZADD NX,
                                    BZPOPMIN (oldest first)
    {prefix}subtypes        hash    sub_type -> JSON registration of a live subtype (registry.py)
    {prefix}scheduler       string  the elected scheduler's id, with a TTL (election.py)

A sorted set holds a message at most once, so re-sending READY work (the
scheduler's re-dispatch, two schedulers at once) never queues it twice, and
NX keeps a re-sent message in its place.  BZPOPMIN takes the oldest message
and removes it in one atomic step: a pop is one round trip, and nothing is
left marked if the popper dies right after.  Nothing here is the record of
anything: FLUSHALL loses wake-ups only, and the scheduler re-sends READY work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from dlsupervisor.config import RedisSettings
from dlsupervisor.connections import redis_client
from dlsupervisor.errors import QueueUnavailable
from dlsupervisor.queue.messages import Popped
from dlsupervisor.registry import Registration

_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class RedisQueue:
    def __init__(self, settings: RedisSettings, *, timeout: float = 10.0) -> None:
        self.prefix = settings.key_prefix
        self._client = redis_client(settings, timeout=timeout)  # url, TLS, Sentinel: connections.py

    def queue_key(self, queue_key: str) -> str:
        return f"{self.prefix}q:{queue_key}"

    def push(self, queue_key: str, messages: Sequence[str]) -> int:
        """Queue what is not queued yet; returns how many were new."""
        if not messages:
            return 0
        now_ms = int(time.time() * 1000)
        try:
            return int(self._client.zadd(self.queue_key(queue_key), dict.fromkeys(messages, now_ms), nx=True))
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    def pop(self, route: Registration, timeout: float) -> Popped | None:
        try:
            popped = self._client.bzpopmin([self.queue_key(route.queue_key)], timeout=timeout)
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc
        return Popped(popped[1], float(popped[2])) if popped is not None else None

    def give_back(self, queue_key: str, popped: Popped) -> None:
        """Queue a popped message again with its score, so it keeps its place (NX: a copy
        re-sent meanwhile stays as it is)."""
        score = popped.score if popped.score is not None else time.time() * 1000
        try:
            self._client.zadd(self.queue_key(queue_key), {popped.text: score}, nx=True)
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    def ping(self) -> None:
        try:
            self._client.ping()
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    @property
    def client(self) -> redis.Redis:
        return self._client

    def close(self) -> None:
        self._client.close()
