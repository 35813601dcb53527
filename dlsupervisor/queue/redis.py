"""Redis as the wake-up channel: one sorted set per subtype.

Key schema (all under `key_prefix`, default `dl:`):

    {prefix}q:{queue_key}   zset    message `i:ID` / `s:ID` -> score (score_of: its org's
                                    place, then push time); ZADD LT, BZPOPMIN (lowest first)
    {prefix}subtypes        hash    sub_type -> JSON registration of a live subtype (registry.py)
    {prefix}scheduler       string  the elected scheduler's id, with a TTL (election.py)
    {prefix}nudge           list    at most one element: a worker ran out of queued work,
                                    the scheduler's next pass comes now (scheduler.py)

A sorted set holds a message at most once, so re-sending READY work (the
scheduler's re-dispatch, two schedulers at once) never queues it twice, and
LT only ever moves a re-sent message forward.  The score makes the set
fair (contract §9): an item's place in its org's line (the store ranks READY
items per org and subtype) comes first, its push time second, so the orgs'
first items go before anyone's second, and so on; a pinned task's items sit
in a band below every unpinned one.  BZPOPMIN takes the oldest message
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
from dlsupervisor.queue.messages import Place, Popped
from dlsupervisor.registry import Registration

_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
EPOCH_MS = 1_700_000_000_000  # push times count from here, so they stay small beside a place
PLACE = 2**40  # one place in an org's line outweighs 34 years of push times
PINNED = 2**12  # pinned items sit this many places ahead: below every unpinned one


def score_of(place: Place, now_ms: int) -> float:
    """The wake-up's score: its place in its org's line, then its push time; pinned first."""
    pinned, pos = place
    band = min(max(pos, 1), PINNED - 1) - PINNED if pinned else max(pos, 1)
    return float(band * PLACE + now_ms - EPOCH_MS)


class RedisQueue:
    def __init__(self, settings: RedisSettings, *, timeout: float = 10.0) -> None:
        self.prefix = settings.key_prefix
        self._client = redis_client(settings, timeout=timeout)  # url, TLS, Sentinel: connections.py

    def queue_key(self, queue_key: str) -> str:
        return f"{self.prefix}q:{queue_key}"

    def push(self, queue_key: str, messages: Sequence[str], places: Sequence[Place] | None = None) -> int:
        """Queue what is not queued yet, at its place (default: first in line, unpinned);
        a message queued already only ever moves forward.  Returns how many were new."""
        if not messages:
            return 0
        now_ms = int(time.time() * 1000)
        places = places or [(False, 1)] * len(messages)
        scores = {m: score_of(p, now_ms) for m, p in zip(messages, places, strict=True)}
        try:
            return int(self._client.zadd(self.queue_key(queue_key), scores, lt=True))
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    def pop(self, route: Registration, timeout: float) -> Popped | None:
        """The first message in line, waiting up to `timeout` for one (<= 0: not at all)."""
        key = self.queue_key(route.queue_key)
        try:
            if timeout <= 0:
                first = self._client.zpopmin(key)
                return Popped(first[0][0], float(first[0][1])) if first else None
            popped = self._client.bzpopmin([key], timeout=timeout)
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc
        return Popped(popped[1], float(popped[2])) if popped is not None else None

    def nudge(self) -> None:
        """Ask the scheduler for a pass now; one pending nudge at most (LTRIM)."""
        try:
            self._client.pipeline(transaction=False).lpush(self._nudge_key, 1).ltrim(
                self._nudge_key, 0, 0
            ).execute()
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    def await_nudge(self, timeout: float) -> bool:
        """Wait up to `timeout` for a worker's nudge; True if one came."""
        if timeout <= 0.001:  # BLPOP's 0 would wait for ever
            return False
        try:
            return self._client.blpop([self._nudge_key], timeout=timeout) is not None
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    @property
    def _nudge_key(self) -> str:
        return f"{self.prefix}nudge"

    def give_back(self, queue_key: str, popped: Popped) -> None:
        """Queue a popped message again with its score, so it keeps its place (NX: a copy
        re-sent meanwhile stays as it is)."""
        score = popped.score if popped.score is not None else score_of((False, 1), int(time.time() * 1000))
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
