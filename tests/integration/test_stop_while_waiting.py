"""A stop signal reaching an idle worker never drops a wake-up it already popped from Redis,
and a worker blocked on Redis still stops promptly.  The worker runs in-process with the
children's real signal handlers (spawn.install_stop_handlers), against the real Redis."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import pytest

from dlsupervisor.errors import EX_RECYCLE, StopNow
from dlsupervisor.model import ItemStatus
from dlsupervisor.slots import Slot
from dlsupervisor.spawn import install_stop_handlers
from dlsupervisor.worker import StopState
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1)


@pytest.fixture
def stop():
    """The children's handlers installed in this process; the previous ones restored after."""
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}
    state = StopState()
    try:
        install_stop_handlers(state, Slot())
        yield state
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_stop_landing_right_after_the_pop_gives_the_wake_up_back_in_its_place(mysql_env, stop):
    env = mysql_env
    worker = env.worker(stop=stop)
    worker.register()
    _, (item_id,) = env.new_task({"do": "ok"}, status=1)
    key = env.queue.queue_key("behaviour")
    env.queue.client.zadd(key, {"i:999999": 1000, f"i:{item_id}": 2000})
    env.queue.client.zpopmin(key)  # leaves ours, with its original score
    pop, term = worker.queue.pop, signal.getsignal(signal.SIGTERM)

    def pop_then_sigterm(route, timeout):
        popped = pop(route, timeout)
        term(signal.SIGTERM, None)  # the stop arrives with the reply in hand, before the claim
        return popped

    worker.queue.pop = pop_then_sigterm
    with contextlib.suppress(StopNow):
        worker.run_once(timeout=1)
    assert stop.requested
    queued = env.queue.client.zscore(key, f"i:{item_id}")
    item = env.db.item(item_id)
    assert queued == 2000 or item["status"] == ItemStatus.DONE, (queued, item)


def test_a_worker_blocked_on_redis_stops_within_a_second_of_sigterm(mysql_env, stop):
    env = mysql_env
    worker = env.worker(stop=stop)
    worker.idle_wait = 30.0  # far longer than the stop may take
    main = threading.get_ident()
    key = env.queue.queue_key("behaviour")

    def blocked() -> bool:
        clients = env.queue.client.client_list()
        return any(c["cmd"] == "bzpopmin" and "b" in c["flags"] for c in clients)

    def send_term() -> None:
        try:
            seen.append(wait_until(blocked, timeout=10, what=f"a worker blocked on {key}"))
        except AssertionError:
            seen.append(False)
        finally:  # always, so the worker never waits out its 30 s
            sent.append(time.monotonic())
            signal.pthread_kill(main, signal.SIGTERM)

    seen: list[bool] = []
    sent: list[float] = []
    thread = threading.Thread(target=send_term, daemon=True)
    thread.start()
    try:
        code = worker.run()
    except StopNow:
        code = EX_RECYCLE  # the child's boundary (spawn.run_guarded) turns it into this status
    took = time.monotonic() - sent[0]
    thread.join(5)
    assert seen == [True], "the worker was never seen blocked in BZPOPMIN"
    assert code == EX_RECYCLE
    assert took < 1.0, f"the worker took {took:.2f}s to stop"
