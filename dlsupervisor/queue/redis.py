"""Redis lists as the wake-up channel.

Key schema (all under `key_prefix`, default `dl:`):

    {prefix}q:{queue_key}   list    messages `i:ID` / `s:ID`; RPUSH, BLPOP (oldest first)
    {prefix}p:{queue_key}   zset    message -> push time (ms): what sits in the list, so
                                    re-sending READY work never duplicates it
    {prefix}subtypes        hash    sub_type -> JSON registration of a live subtype
    {prefix}scheduler       string  the elected scheduler's id, with a TTL (election.py)

Pushes are one Lua script per queue (check pending, push, mark), so a message
is never in the list twice.  While work keeps coming, a pop is one round trip
(a script: LPOP and unmark); a worker that had to wait blocks in BLPOP, then
unmarks what it got (ZREM).  Nothing here is the record of anything: FLUSHALL
loses wake-ups only, and the scheduler re-sends READY work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import redis

from dlsupervisor.config import RedisSettings
from dlsupervisor.errors import QueueUnavailable
from dlsupervisor.store import Registration

# A message pending longer than this may be pushed again (its popper may have died
# between BLPOP and ZREM); a backlog older than this costs a duplicate wake-up, which
# the claim turns into a no-op.
PENDING_STALE_MS = 60_000

_PUSH = """
local now = tonumber(ARGV[1])
local stale = tonumber(ARGV[2])
local pushed = 0
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if (not score) or (tonumber(score) < now - stale) then
    redis.call('ZADD', KEYS[2], now, ARGV[i])
    redis.call('RPUSH', KEYS[1], ARGV[i])
    pushed = pushed + 1
  end
end
return pushed
"""

# Take the oldest message and unmark it, if there is one.
_POP = """
local message = redis.call('LPOP', KEYS[1])
if message then
  redis.call('ZREM', KEYS[2], message)
end
return message
"""

_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def connect(url: str, *, timeout: float = 10.0) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 5.0),
        retry_on_timeout=False,
    )


class RedisQueue:
    def __init__(self, settings: RedisSettings, *, timeout: float = 10.0) -> None:
        self.prefix = settings.key_prefix
        self._client = connect(settings.url, timeout=timeout)
        self._push = self._client.register_script(_PUSH)
        self._pop = self._client.register_script(_POP)
        self._hot = False  # the last pop found work: try the non-blocking pop first

    def list_key(self, queue_key: str) -> str:
        return f"{self.prefix}q:{queue_key}"

    def pending_key(self, queue_key: str) -> str:
        return f"{self.prefix}p:{queue_key}"

    @property
    def registry_key(self) -> str:
        return f"{self.prefix}subtypes"

    def push(self, queue_key: str, messages: Sequence[str]) -> int:
        if not messages:
            return 0
        keys = [self.list_key(queue_key), self.pending_key(queue_key)]
        now_ms = int(time.time() * 1000)
        try:
            return int(self._push(keys=keys, args=[now_ms, PENDING_STALE_MS, *messages]))
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    def pop(self, route: Registration, timeout: float) -> str | None:
        keys = [self.list_key(route.queue_key), self.pending_key(route.queue_key)]
        try:
            message = self._pop(keys=keys) if self._hot else None
            if message is None:
                popped = self._client.blpop([keys[0]], timeout=timeout)
                message = popped[1] if popped is not None else None
                if message is not None:
                    self._client.zrem(keys[1], message)
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc
        self._hot = message is not None
        return message

    def register(self, reg: Registration) -> None:
        value = json.dumps({**reg.__dict__, "seen": time.time()})
        try:
            self._client.hset(self.registry_key, str(reg.sub_type), value)
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    def registrations(self, max_age: float) -> list[Registration]:
        try:
            raw = self._client.hgetall(self.registry_key)
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc
        oldest = time.time() - max_age
        found = []
        for value in raw.values():
            try:
                entry = json.loads(value)
                if entry.pop("seen", 0) >= oldest:
                    found.append(Registration(**entry))
            except (ValueError, TypeError):
                continue  # not ours (a hand-written field); ignore it
        return found

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
