"""Which subtypes have live workers, and where the scheduler sends their work.

Workers register their subtype every REGISTER_EVERY seconds; the scheduler
routes by the registrations seen within REGISTRATION_MAX_AGE, so it never
imports user code.  With Redis they live in one hash; without it, in the
database (the SQL lives in the store).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import redis

from dlsupervisor.config import Settings
from dlsupervisor.errors import QueueUnavailable

REGISTER_EVERY = 5.0  # seconds between registrations of this subtype
REGISTRATION_MAX_AGE = 30.0  # the scheduler ignores registrations older than this

_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass(frozen=True)
class Registration:
    """A subtype served by live workers: how the scheduler routes its tasks."""

    name: str
    type: int
    sub_type: int
    queue_key: str
    multi: bool
    max_per_org: int = 0  # the cap on one org's running items (0: none); carried by Redis only


class Registry(Protocol):
    def register(self, reg: Registration) -> None: ...
    def registrations(self, max_age: float) -> list[Registration]: ...


class RegistrationStore(Protocol):
    """The store's side of a database registry."""

    def register(self, reg: Registration) -> None: ...
    def registrations(self, max_age: float) -> list[Registration]: ...


class RedisClientHolder(Protocol):
    """A queue over Redis: its client carries the registry too."""

    @property
    def client(self) -> redis.Redis: ...


class RedisRegistry:
    """`{prefix}subtypes`: a hash of sub_type -> JSON registration with the time it was seen."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self.key = f"{prefix}subtypes"

    def register(self, reg: Registration) -> None:
        value = json.dumps({**asdict(reg), "seen": time.time()})
        try:
            self._client.hset(self.key, str(reg.sub_type), value)
        except _ERRORS as exc:
            raise QueueUnavailable(f"redis: {exc}") from exc

    def registrations(self, max_age: float) -> list[Registration]:
        try:
            raw = self._client.hgetall(self.key)
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


class DatabaseRegistry:
    """The `dlsupervisor_subtype` table, for configurations without Redis."""

    def __init__(self, store: RegistrationStore) -> None:
        self._store = store

    def register(self, reg: Registration) -> None:
        self._store.register(reg)

    def registrations(self, max_age: float) -> list[Registration]:
        return self._store.registrations(max_age)


def open_registry(
    settings: Settings, store: RegistrationStore | Any, work_queue: RedisClientHolder | Any
) -> Registry:
    """The registry beside this configuration's queue: the Redis queue's hash, else the database
    (`store` then must be a RegistrationStore, as every store open_store returns is)."""
    if settings.redis is not None:
        return RedisRegistry(work_queue.client, settings.redis.key_prefix)
    return DatabaseRegistry(store)
