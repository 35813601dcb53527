"""The only os.fork: child-side setup, then the scheduler's or a worker's loop.

The child path never returns: it ends in os._exit with a named status.  The
master blocks its handled signals around fork; the child resets every handler,
drops the master's wakeup pipe and its end of the lifeline, leads its own
process group (so a kill reaches its exports' children, and a terminal's
Ctrl-C reaches only the master), installs its own handlers, then unblocks.
"""

from __future__ import annotations

import logging
import os
import random
import select
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable

import setproctitle

from dlsupervisor import handlers, logsetup, proctree
from dlsupervisor.config import Settings, SubtypeSettings
from dlsupervisor.election import open_election
from dlsupervisor.errors import (
    EX_ABORTED,
    EX_BOOT,
    EX_FAILURE,
    EX_ORPHANED,
    EX_RECYCLE,
    Aborted,
    HandlerLoadError,
    StopNow,
)
from dlsupervisor.queue import open_queue
from dlsupervisor.signals import SignalInbox, blocked
from dlsupervisor.slots import Control, Slot, SlotState
from dlsupervisor.store import open_store
from dlsupervisor.task import DownloadTaskBase
from dlsupervisor.worker import StopState, Worker, reopen_log_if_asked

TITLE = "dlsupervisor:"
PARENT_CHECK_EVERY = 5.0  # seconds between a child's backstop checks that its master is alive


class Lifeline:
    """A pipe whose write end only the master holds: children see EOF the moment it is gone.

    Children block on the read end, so noticing a dead master costs no polling.
    """

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()

    def close_in_child(self) -> None:
        os.close(self._write_fd)


def fork_child(inbox: SignalInbox, main: Callable[[], int], lifeline: Lifeline | None = None) -> int:
    """Fork; in the child run `main` and exit with its status.  Returns the child's pid."""
    with blocked():
        pid = os.fork()
        if pid == 0:
            code = EX_FAILURE
            try:
                inbox.close_in_child()
                if lifeline is not None:
                    lifeline.close_in_child()
                os.setpgid(0, 0)
                random.seed()
                code = main()
            except BaseException:
                traceback.print_exc()
            finally:
                logging.shutdown()
                os._exit(code)
    return pid


def fork_plain(main: Callable[[], int]) -> int:
    """Fork outside a master (no inbox to drop): for preflight checks before it starts."""
    pid = os.fork()
    if pid == 0:
        code = EX_FAILURE
        try:
            code = main()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


class TitledSlot:
    """The slot, plus the process title contract.md §4 asks for, kept current as work changes."""

    def __init__(self, slot: Slot, prefix: str) -> None:
        self._slot = slot
        self._prefix = prefix

    def write(
        self, state: SlotState, work_id: int = 0, attempt: int = 0, *, now: float | None = None
    ) -> None:
        self._slot.write(state, work_id, attempt, now=now)
        if state == SlotState.ITEM:
            setproctitle.setproctitle(f"{self._prefix} item {work_id}")
        elif state == SlotState.SPLIT:
            setproctitle.setproctitle(f"{self._prefix} split {work_id}")
        elif state == SlotState.NOTICE:
            setproctitle.setproctitle(f"{self._prefix} notice {work_id}")
        else:
            setproctitle.setproctitle(f"{self._prefix} idle")

    def beat(self, now: float | None = None) -> None:
        self._slot.beat(now)

    def progress(self, done: int, total: int | None = None) -> None:
        self._slot.progress(done, total)

    @property
    def control(self) -> Control:
        return self._slot.control


def install_stop_handlers(stop: StopState, slot: Slot) -> None:
    """SIGTERM: abort if the master asked (slot control), else finish the item and exit.

    Handlers only set a flag or raise; they never log or do I/O.  Each raises
    once: the master signals the group and the process, so a second SIGTERM
    can land while the first one unwinds (in the middle of a slot write, say).
    """

    def on_term(signum: int, frame: object) -> None:
        if slot.control == Control.ABORT:
            if not stop.aborted:
                stop.aborted = True
                raise Aborted()
            return
        if stop.requested:
            return
        stop.requested = True
        if stop.interruptible:
            raise StopNow()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTTIN, signal.SIG_IGN)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, lambda signum, frame: setattr(stop, "reopen_log", True))


def watch_parent(master_pid: int, lifeline_fd: int) -> Callable[[], bool]:
    """A daemon thread that ends this child's whole tree if the master dies.

    A busy worker may sit in an export for minutes; the thread wakes when the
    lifeline reaches EOF (or, as a backstop for a write end some other process
    kept, every PARENT_CHECK_EVERY) and takes the export's children down with it
    (contract.md §4).
    """

    def alive() -> bool:
        return os.getppid() == master_pid

    def watch() -> None:
        wait = PARENT_CHECK_EVERY
        while alive():
            eof = select.select([lifeline_fd], [], [], wait)[0]
            wait = 0.1 if eof else PARENT_CHECK_EVERY  # EOF, master still our parent: going now
        os.write(2, f"dlsupervisor child {os.getpid()}: master {master_pid} is gone; exiting\n".encode())
        tree = proctree.descendants(os.getpid())
        proctree.kill_tree(os.getpid(), tree)
        os._exit(EX_ORPHANED)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return alive


def worker_main(
    settings: Settings,
    sub: SubtypeSettings,
    number: int,
    slot: Slot,
    master_pid: int,
    host: str,
    lifeline_fd: int,
    handler: DownloadTaskBase | None = None,
) -> int:
    """Worker `number` of its subtype.  The daemon imports and constructs the handler here, after fork;
    standalone mode (standalone.py) passes the instance its script built, inherited by fork.
    """
    prefix = f"{TITLE} worker {sub.name}#{number}"
    setproctitle.setproctitle(f"{prefix} idle")
    logsetup.configure(
        settings.supervisor.log_level, settings.supervisor.log_file, f"worker {sub.name}#{number}"
    )
    log = logging.getLogger("dlsupervisor.worker")
    stop = StopState()
    install_stop_handlers(stop, slot)
    parent_alive = watch_parent(master_pid, lifeline_fd)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
    try:
        if handler is None:
            handlers.allow_imports_beside_config(settings)
            cls, info = handlers.load(settings, sub)
            handler = handlers.construct(cls, info, settings)
        else:
            info = handler.task_info
    except HandlerLoadError as exc:
        log.error("boot error: %s", exc)
        return EX_BOOT
    except StopNow:
        return EX_RECYCLE
    store = open_store(settings.database)
    work_queue = open_queue(settings, store)
    worker = Worker(
        settings,
        sub,
        handlers.registration(sub, info),
        handler,
        store,
        work_queue,
        host=host,
        slot=TitledSlot(slot, prefix),
        stop=stop,
        parent_alive=parent_alive,
        label=f"{sub.name}#{number}",
    )
    return run_guarded(worker.run, log)


def scheduler_main(settings: Settings, slot: Slot, master_pid: int, lifeline_fd: int) -> int:
    setproctitle.setproctitle(f"{TITLE} scheduler")
    logsetup.configure(settings.supervisor.log_level, settings.supervisor.log_file, "scheduler")
    log = logging.getLogger("dlsupervisor.scheduler")
    stop = StopState()
    install_stop_handlers(stop, slot)
    parent_alive = watch_parent(master_pid, lifeline_fd)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
    from dlsupervisor.scheduler import Scheduler

    store = open_store(settings.database)
    work_queue = open_queue(settings, store)
    scheduler = Scheduler(settings, store, work_queue, open_election(settings, store, work_queue))
    slot.write(SlotState.IDLE)

    def should_stop() -> bool:
        slot.beat()
        reopen_log_if_asked(stop, "scheduler")
        return stop.requested

    return run_guarded(lambda: scheduler.run(should_stop, parent_alive), log)


def web_main(settings: Settings, slot: Slot, master_pid: int, lifeline_fd: int) -> int:
    """The web child (contract.md §8): never imports user code; a thread keeps its slot beating."""
    setproctitle.setproctitle(f"{TITLE} web")
    logsetup.configure(settings.supervisor.log_level, settings.supervisor.log_file, "web")
    log = logging.getLogger("dlsupervisor.web")
    stop = StopState()
    install_stop_handlers(stop, slot)
    watch_parent(master_pid, lifeline_fd)
    every = max(0.5, min(5.0, settings.supervisor.heartbeat_timeout / 4))

    def beat() -> None:
        while True:
            slot.beat()
            time.sleep(every)

    from dlsupervisor.web.server import make_server

    try:
        server = make_server(settings)
    except (OSError, RuntimeError) as exc:
        log.error("boot error: cannot serve on %s: %s", settings.web.listen if settings.web else "", exc)
        return EX_BOOT
    slot.write(SlotState.IDLE)
    threading.Thread(target=beat, name="web-beat", daemon=True).start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
    log.info("web: serving on %s", settings.web.listen if settings.web else "")
    return run_guarded(lambda: server.run() or EX_RECYCLE, log)


def run_guarded(loop: Callable[[], int], log: logging.Logger) -> int:
    """A child's exception boundary: every way out is a named exit status."""
    try:
        return loop()
    except StopNow:
        return EX_RECYCLE
    except Aborted:
        return EX_ABORTED
    except Exception:
        log.exception("crashed")
        return EX_FAILURE


def hostname() -> str:
    return socket.gethostname()
