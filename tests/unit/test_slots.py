"""The master reads a child's slot without ever hanging on a record the child left half-written,
and a worker unwinds the master's abort once however many SIGTERMs reach it."""

from __future__ import annotations

import signal
import struct

import pytest

from dlsupervisor.child import Child
from dlsupervisor.errors import Aborted, StopNow
from dlsupervisor.slots import Control, Slot, SlotState
from dlsupervisor.spawn import install_stop_handlers
from dlsupervisor.worker import StopState

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1)


def test_a_record_left_torn_by_a_dead_child_reads_as_none_and_the_last_view_stands():
    slot = Slot()
    slot.write(SlotState.ITEM, 42, 1)
    child = Child("demo#1", "worker", "demo", 1, None)
    child.observe(slot.read())
    struct.pack_into("<I", slot._mem, 0, 7)  # odd: the child died between its two counter writes
    assert slot.read() is None
    child.observe(slot.read())
    assert child.view.state == SlotState.ITEM and child.view.work_id == 42


@pytest.fixture
def on_term():
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}
    stop, slot = StopState(), Slot()
    try:
        install_stop_handlers(stop, slot)
        yield stop, slot, signal.getsignal(signal.SIGTERM)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_the_masters_abort_is_raised_once_however_many_sigterms_arrive(on_term):
    stop, slot, handler = on_term
    stop.busy = True
    slot.request(Control.ABORT)
    with pytest.raises(Aborted):
        handler(signal.SIGTERM, None)
    handler(signal.SIGTERM, None)  # the tree's SIGTERM reaching the worker again while it unwinds


def test_an_idle_worker_stops_at_the_first_sigterm_and_ignores_the_next(on_term):
    stop, slot, handler = on_term
    with pytest.raises(StopNow):
        handler(signal.SIGTERM, None)
    assert stop.requested
    handler(signal.SIGTERM, None)
