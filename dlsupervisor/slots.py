"""One shared-memory slot per child: what it is doing, written by the child, read by the master.

The master learns a child's item and start time without trusting the child to
be alive (architecture.md, invariant 4), the way gunicorn's arbiter reads heartbeats.
The child writes its fields as one packed record bracketed by a sequence
counter (odd while writing); the master re-reads until it sees an even,
unchanged counter, so it never acts on a half-written item id.  A record that
stays torn belongs to a child that died (or was preempted) mid-write: after
READ_TRIES the master keeps what it saw last instead of spinning.  One byte
goes the other way: the master's `control` request (abort the current work).
"""

from __future__ import annotations

import mmap
import struct
import time
from dataclasses import dataclass
from enum import IntEnum

# Written by the child: seq u32 | state u8 | pad 3 | work_id u64 | attempt u32 | done u32 |
# started f64 | beat f64 | progress done i64 | progress total i64 (both -1: none reported).
# Written by the master: one control byte, outside the record.
_LAYOUT = struct.Struct("<IBxxxQIIddqq")
NO_PROGRESS = -1
_CONTROL_OFFSET = 63
SLOT_SIZE = 64
READ_TRIES = 100


class SlotState(IntEnum):
    STARTING = 0
    IDLE = 1
    ITEM = 2  # exporting work_id (an item)
    SPLIT = 3  # splitting work_id (a task)
    STOPPING = 4
    NOTICE = 5  # delivering a completion notice of task work_id (under the subtype's timeout)


WORKING = (SlotState.ITEM, SlotState.SPLIT, SlotState.NOTICE)  # states the master times out


class Control(IntEnum):
    NONE = 0
    ABORT = 1  # the master has recorded the outcome; unwind the export now


@dataclass(frozen=True)
class SlotView:
    state: SlotState
    work_id: int
    attempt: int
    done: int  # items finished by this child
    started: float  # time.monotonic() when the current work began
    beat: float  # time.monotonic() of the child's last sign of life
    progress_done: int = NO_PROGRESS  # what the export reported of the current item (progress())
    progress_total: int = NO_PROGRESS  # NO_PROGRESS: no total given

    @property
    def progress(self) -> tuple[int, int | None] | None:
        """(done, total or None) the current item's export reported; None if it reported none."""
        if self.state != SlotState.ITEM or self.progress_done < 0:
            return None
        return self.progress_done, (self.progress_total if self.progress_total >= 0 else None)


class Slot:
    """Created by the master before fork; the child inherits the mapping."""

    def __init__(self, now: float | None = None) -> None:
        self._mem = mmap.mmap(-1, SLOT_SIZE, flags=mmap.MAP_SHARED)
        self._seq = 0
        self._state = SlotState.STARTING
        self._work_id = 0
        self._attempt = 0
        self._done = 0
        self._started = 0.0
        self._progress = (NO_PROGRESS, NO_PROGRESS)
        self.write(SlotState.STARTING, now=now)

    # -- child side ------------------------------------------------------------------

    def write(
        self,
        state: SlotState,
        work_id: int = 0,
        attempt: int = 0,
        *,
        now: float | None = None,
    ) -> None:
        now = time.monotonic() if now is None else now
        if state != self._state or work_id != self._work_id:
            self._started = now
            self._progress = (NO_PROGRESS, NO_PROGRESS)
        if self._state == SlotState.ITEM and state != SlotState.ITEM:
            self._done += 1
        self._state, self._work_id, self._attempt = state, work_id, attempt
        self._publish(now)

    def beat(self, now: float | None = None) -> None:
        self._publish(time.monotonic() if now is None else now)

    def progress(self, done: int, total: int | None = None) -> None:
        """The export's progress on the current item: a memory write, no I/O (the master
        reads it and writes it to the database at most once a second)."""
        self._progress = (done, NO_PROGRESS if total is None else total)
        self._publish(time.monotonic())

    def _publish(self, now: float) -> None:
        self._seq += 1  # odd: writing
        struct.pack_into("<I", self._mem, 0, self._seq)
        _LAYOUT.pack_into(
            self._mem,
            0,
            self._seq,
            int(self._state),
            self._work_id,
            self._attempt,
            self._done,
            self._started,
            now,
            *self._progress,
        )
        self._seq += 1  # even: consistent
        struct.pack_into("<I", self._mem, 0, self._seq)

    @property
    def control(self) -> Control:
        return Control(self._mem[_CONTROL_OFFSET])

    # -- master side -----------------------------------------------------------------

    def read(self) -> SlotView | None:
        """The child's record, or None while it is torn."""
        for _ in range(READ_TRIES):
            before = struct.unpack_from("<I", self._mem, 0)[0]
            fields = _LAYOUT.unpack_from(self._mem, 0)
            after = struct.unpack_from("<I", self._mem, 0)[0]
            if before == after and not before & 1:
                _, state, work_id, attempt, done, started, beat, p_done, p_total = fields
                return SlotView(SlotState(state), work_id, attempt, done, started, beat, p_done, p_total)
        return None

    def request(self, control: Control) -> None:
        self._mem[_CONTROL_OFFSET] = int(control)

    def close(self) -> None:
        self._mem.close()


class NullSlot:
    """For loops driven in-process by tests: records nothing, never aborts."""

    control = Control.NONE

    def write(self, state: SlotState, work_id: int = 0, attempt: int = 0, *, now: float | None = None):
        pass

    def beat(self, now: float | None = None) -> None:
        pass

    def progress(self, done: int, total: int | None = None) -> None:
        pass
