"""`python -m bench.drivers`: the worker's CPU time per item on each MySQL driver and Redis parser.

    python -m bench.drivers                  # 15 rounds of 400 items per combination
    python -m bench.drivers --rounds 3 --items 50   # a quick look

In one process, for each combination of MySQL driver (PyMySQL; mysqlclient, the C
client) and redis-py parser (its own RESP3 parser; hiredis), it measures the
CPU time (time.process_time: user + system, not wall time, so that other work on
a shared machine slows it less than it slows a throughput run) of:

- `worker`: a real Worker (bench.exports:BenchExport, no-op export) draining `items`
  queued wake-ups, back to back as the daemon's workers do: per item one ZPOPMIN and
  one `record_and_claim` packet;
- the calls of that path alone, `items` times each: the store's `claim`, `record`
  and `record_and_claim`, the queue's `push` (one message) and `pop`.

The combinations take turns within every round, so a burst of other work on the
machine falls on all of them alike; the table gives the median and the quartiles of
the rounds.  mysqlclient (the `mysqlclient` extra) and hiredis (`pip install hiredis`)
must be installed to be measured; a missing one is left out of the table.  Everything it creates
is the bench's (a `dlsv_bench_<run>_*` database, `dlb:<run>:*` keys) and is removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from redis._parsers import _HiredisParser, _RESP3Parser

from bench.world import SUB_TYPE, World, insert_items
from dlsupervisor import config, handlers
from dlsupervisor.config import Settings
from dlsupervisor.model import ItemStatus
from dlsupervisor.queue import open_queue
from dlsupervisor.queue.redis import RedisQueue
from dlsupervisor.store import Outcome, Recording, open_store
from dlsupervisor.worker import Worker

OWNER = "bench-drivers:1"
OUTCOME = Outcome(ItemStatus.DONE, url="file:///dev/null", md5="0" * 32, file_name="f.txt")
PARSERS = {"redis-py": _RESP3Parser, "hiredis": _HiredisParser}


@dataclasses.dataclass
class Combo:
    driver: str
    parser: str
    worker: Worker
    samples: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.driver} + {self.parser}"

    def add(self, what: str, ms: float) -> None:
        self.samples.setdefault(what, []).append(ms)


def available() -> list[tuple[str, str]]:
    drivers = ["pymysql"] + (["mysqlclient"] if importlib.util.find_spec("MySQLdb") else [])
    parsers = ["redis-py"] + (["hiredis"] if importlib.util.find_spec("hiredis") else [])
    return [(d, p) for d in drivers for p in parsers]


def settings_for(world: World, db_url: str, driver: str) -> Settings:
    ini = world.tmp / f"drivers-{driver}.ini"
    ini.write_text(
        f"[supervisor]\nrun_dir = {world.tmp}\n"
        f"[database]\nurl = {db_url}\ndriver = {driver}\n"
        f"[redis]\nurl = {world.redis_url}\nkey_prefix = {world.prefix}\n"
        "[subtype:bench]\nhandler = bench.exports:BenchExport\n"
    )
    return config.load(str(ini))


def make_worker(settings: Settings, parser: str) -> Worker:
    sub = settings.subtype("bench")
    cls, info = handlers.load(settings, sub)
    store = open_store(settings.database)
    work_queue = open_queue(settings, store)
    assert isinstance(work_queue, RedisQueue)
    pool = work_queue.client.connection_pool
    pool.connection_kwargs["parser_class"] = PARSERS[parser]
    pool.disconnect()
    conn = pool.get_connection()
    try:
        conn.connect()
        assert isinstance(conn._parser, PARSERS[parser]), conn._parser
    finally:
        pool.release(conn)
    worker = Worker(
        settings,
        sub,
        handlers.registration(sub, info),
        handlers.construct(cls, info, settings),
        store,
        work_queue,
        host=socket.gethostname(),
    )
    worker.register()
    return worker


def cpu_ms_per(count: int, run: Callable[[], None]) -> float:
    began = time.process_time()
    run()
    return (time.process_time() - began) / count * 1e3


def drain(worker: Worker, db_url: str, count: int) -> float:
    """CPU ms per item of the worker running `count` queued no-op items."""
    ids = insert_items(db_url, count, {"mode": "noop"})
    worker.queue.push(worker.route.queue_key, [f"i:{i}" for i in ids])
    target = worker.items_done + count

    def run() -> None:
        deadline = time.monotonic() + 60 + count * 0.05
        while worker.items_done < target:
            assert time.monotonic() < deadline, f"{worker.items_done} of {target} items in time"
            worker.run_once(timeout=0.5)

    return cpu_ms_per(count, run)


def calls(combo: Combo, db_url: str, count: int) -> None:
    """The hot path's calls alone, each `count` times."""
    store, work_queue, route = combo.worker.store, combo.worker.queue, combo.worker.route
    ids = insert_items(db_url, count + 1, {"mode": "noop"})
    claims: list[Any] = []
    take = lambda: claims.extend(store.claim(i, OWNER, SUB_TYPE) for i in ids[:-1])  # noqa: E731
    combo.add("claim", cpu_ms_per(count, take))
    assert all(claims), "every claim taken"

    def record() -> None:
        for item_id, claim in zip(ids, claims, strict=False):
            assert store.record(item_id, claim.token, OUTCOME, 3600, count=False)

    combo.add("record", cpu_ms_per(count, record))
    ids = insert_items(db_url, count + 1, {"mode": "noop"})

    def chain() -> None:
        claim = store.claim(ids[0], OWNER, SUB_TYPE)
        for done, following in zip(ids, ids[1:], strict=False):
            recorded, claim = store.record_and_claim(
                Recording(done, claim.token, OUTCOME, 3600), following, OWNER, SUB_TYPE
            )
            assert recorded and claim is not None

    combo.add("record_and_claim", cpu_ms_per(count, chain))
    key = f"drivers-{combo.driver}-{combo.parser}"

    def push() -> None:
        for n in range(count):
            work_queue.push(key, [f"i:{n}"])

    def pop() -> None:
        popping = dataclasses.replace(route, queue_key=key)
        for _ in range(count):
            assert work_queue.pop(popping, 0) is not None

    combo.add("push", cpu_ms_per(count, push))
    combo.add("pop", cpu_ms_per(count, pop))


def quartiles(values: list[float]) -> str:
    if len(values) < 4:
        return f"{statistics.median(values):.3f}"
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{q2:.3f} ({q1:.3f}–{q3:.3f})"


def table(combos: list[Combo]) -> str:
    measures = ["worker", "claim", "record", "record_and_claim", "push", "pop"]
    base = statistics.median(combos[0].samples["worker"])
    lines = [
        "| CPU ms per call, median (quartiles) | " + " | ".join(measures) + " | worker vs first |",
        "|---" * (len(measures) + 2) + "|",
    ]
    for combo in combos:
        cells = [quartiles(combo.samples[m]) for m in measures]
        ratio = statistics.median(combo.samples["worker"]) / base
        lines.append(f"| {combo.name} | " + " | ".join(cells) + f" | {ratio - 1:+.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drivers", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--items", type=int, default=400)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # run the cleanup
    world = World()
    try:
        db_url = world.database("drivers")
        combos = [
            Combo(driver, parser_name, make_worker(settings_for(world, db_url, driver), parser_name))
            for driver, parser_name in available()
        ]
        for combo in combos:  # warm: connections made, code paths run once
            drain(combo.worker, db_url, 20)
        for number in range(args.rounds):
            for combo in combos:
                combo.add("worker", drain(combo.worker, db_url, args.items))
                calls(combo, db_url, args.items)
            print(f"round {number + 1} of {args.rounds}", file=sys.stderr, flush=True)
        print(table(combos))
        for combo in combos:
            combo.worker.queue.close()
            combo.worker.store.close()
    finally:
        world.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
