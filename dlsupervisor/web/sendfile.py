"""waitress with `os.sendfile` for `wsgi.file_wrapper` bodies (zero-copy downloads).

waitress 3.0 sends a file-wrapper body by reading it in SO_SNDBUF-sized chunks (16 KB on
Linux's default) into Python bytes and `send`ing each: for a 1 MB download that is
dozens of reads, seeks and sends, and most of the web child's CPU.  waitress has no
public hook for this, so `SendfileChannel` overrides its channel's private flush loop
(`HTTPChannel._flush_some`): the same loop, except that a file buffer backed by a real
file goes out with `os.sendfile` from its current offset, as much as the socket takes.

The private API it relies on is checked in `hooks_missing` (make_server falls back to
waitress's own channel, with a warning, when something is missing) and by
tests/integration/test_web_sendfile.py; pyproject.toml pins waitress to the tested range.
"""

from __future__ import annotations

import errno
import inspect
import os
import stat
import time
from typing import Any

from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel

_NO_FD = -1
# sendfile failing on a socket/file pair for these reasons: copy that buffer instead
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK, errno.EOPNOTSUPP, errno.EIO})
_DISCONNECTED = frozenset(
    {errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED, errno.EPIPE, errno.EBADF}
)
CHANNEL_ATTRIBUTES = ("outbufs", "sendbuf_len")  # set in HTTPChannel.__init__
CLASS_ATTRIBUTES = ("total_outbufs_len", "last_activity")  # HTTPChannel's defaults


def hooks_missing() -> list[str]:
    """What of waitress's private API SendfileChannel relies on is not there (empty: all is)."""
    missing = []
    flush = getattr(HTTPChannel, "_flush_some", None)
    if flush is None or list(inspect.signature(flush).parameters) != ["self", "do_close"]:
        missing.append("HTTPChannel._flush_some(self, do_close)")
    for name in ("send", "_flush_some_if_lockable", "write_soon"):
        if not callable(getattr(HTTPChannel, name, None)):
            missing.append(f"HTTPChannel.{name}")
    init = inspect.getsource(HTTPChannel.__init__)
    missing += [f"HTTPChannel.{a}" for a in CHANNEL_ATTRIBUTES if f"self.{a}" not in init]
    missing += [f"HTTPChannel.{a}" for a in CLASS_ATTRIBUTES if not hasattr(HTTPChannel, a)]
    for name in ("skip", "close", "prepare", "__len__"):
        if not callable(getattr(ReadOnlyFileBasedBuffer, name, None)):
            missing.append(f"ReadOnlyFileBasedBuffer.{name}")
    if "self.file = file" not in inspect.getsource(ReadOnlyFileBasedBuffer.__init__):
        missing.append("ReadOnlyFileBasedBuffer.file")
    if not hasattr(os, "sendfile"):
        missing.append("os.sendfile")
    return missing


class SendfileChannel(HTTPChannel):
    """waitress's channel, its file-wrapper bodies sent with os.sendfile."""

    sendfile_bytes = 0  # bytes sent by sendfile, all channels (the tests read it; not exact under threads)

    def _flush_some(self, do_close: bool = True) -> bool:
        """HTTPChannel._flush_some (waitress 3.0.2) with the sendfile branch: send as much of
        the out buffers as the socket takes; True if anything was sent."""
        sent = 0
        while True:
            outbuf = self.outbufs[0]
            outbuflen = outbuf.__len__()
            fd = _file_fd(outbuf)
            while outbuflen > 0:
                if fd != _NO_FD:
                    num_sent = self._sendfile(outbuf, fd, outbuflen, do_close)
                    if num_sent is None:  # sendfile cannot do this pair: copy it
                        outbuf._dlsupervisor_fd = fd = _NO_FD
                        continue
                else:
                    num_sent = self.send(outbuf.get(self.sendbuf_len), do_close=do_close)
                if not num_sent:  # the socket takes nothing more now
                    return self._sent(sent)
                outbuf.skip(num_sent, True)
                outbuflen -= num_sent
                sent += num_sent
                self.total_outbufs_len -= num_sent
            if len(self.outbufs) <= 1:  # caught up; outbufs[-1] stays, the writable one
                return self._sent(sent)
            done = self.outbufs.pop(0)
            try:
                done.close()
            except Exception:
                self.logger.exception("Unexpected error when closing an outbuf")

    def _sent(self, sent: int) -> bool:
        if sent:
            self.last_activity = time.time()
        return bool(sent)

    def _sendfile(self, outbuf: Any, fd: int, count: int, do_close: bool) -> int | None:
        """Bytes sendfile put on the socket (0: none fit, or the client left), None: unsupported."""
        try:
            num = os.sendfile(self.socket.fileno(), fd, outbuf.file.tell(), count)
        except BlockingIOError:
            return 0
        except OSError as why:
            if why.errno in _DISCONNECTED:
                if do_close:
                    self.handle_close()
                return 0
            if why.errno in _UNSUPPORTED:
                return None
            raise
        if num == 0 and count:  # the file is shorter than announced: stop, as a short read would
            raise OSError(errno.EIO, "the file ended before its Content-Length")
        SendfileChannel.sendfile_bytes += num
        return num


def _file_fd(outbuf: Any) -> int:
    """The file descriptor of a file-wrapper buffer over a regular file, else _NO_FD (cached)."""
    fd = getattr(outbuf, "_dlsupervisor_fd", None)
    if fd is None:
        fd = _NO_FD
        if isinstance(outbuf, ReadOnlyFileBasedBuffer):
            try:
                candidate = outbuf.file.fileno()
                if stat.S_ISREG(os.fstat(candidate).st_mode):
                    fd = candidate
            except (AttributeError, OSError, ValueError):
                pass
        outbuf._dlsupervisor_fd = fd
    return fd
