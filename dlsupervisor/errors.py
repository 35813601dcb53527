"""Exceptions and named exit statuses shared by every process."""

from __future__ import annotations

from types import MappingProxyType

# Exit statuses of the CLI and of child processes.  The master reads a child's
# status to tell a planned exit from a crash.
EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2  # bad configuration or arguments, or a second `start` on a held pidfile
EX_RECYCLE = 3  # a worker retiring after max_items / max_memory_mb / a soft stop
EX_BOOT = 4  # a child could not start (handler import failed, ...)
EX_ABORTED = 5  # a worker stopped mid-item because the master asked (timeout, cancel)
EX_ORPHANED = 6  # a child whose master died

CHILD_EXIT_NAMES = MappingProxyType(
    {
        EX_OK: "ok",
        EX_RECYCLE: "recycled",
        EX_BOOT: "boot error",
        EX_ABORTED: "aborted",
        EX_ORPHANED: "orphaned",
    }
)


class DlsError(Exception):
    """Base of dlsupervisor's own errors."""


class ConfigError(DlsError):
    """A configuration problem, already phrased as one line naming file, section and key."""


class HandlerLoadError(ConfigError):
    """A handler that cannot be imported or is not a DownloadTaskBase subclass."""


class StoreUnavailable(DlsError):
    """The database cannot be reached right now; the call may be retried."""


class QueueUnavailable(DlsError):
    """Redis cannot be reached right now; the call may be retried."""


class Aborted(BaseException):
    """Raised in a worker by the master's abort (timeout, cancel): unwinds the export.

    A BaseException, so an export's `except Exception` does not swallow it.
    """


class StopNow(BaseException):
    """Raised in an idle child by a stop signal, to leave a blocking wait at once."""
