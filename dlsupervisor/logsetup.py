"""Logging for one process: one handler, a format carrying the role and pid."""

from __future__ import annotations

import logging
import logging.handlers
import sys


def configure(level: str, log_file: str, role: str) -> None:
    """(Re)configure the root logger for this process; called after every fork.

    A log file is opened with WatchedFileHandler, so after logrotate moves it
    every process reopens it on its next line; SIGUSR1 reopens it (in a child, at its
    loop's next step: a signal handler does no I/O).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if log_file:
        handler: logging.Handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {role}[%(process)d] %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("redis").setLevel(max(logging.getLevelName(level), logging.INFO))  # no client chatter


def reopen() -> None:
    """Reopen the log file (SIGUSR1, after logrotate)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.close()
                handler.stream = handler._open()
            finally:
                handler.release()
