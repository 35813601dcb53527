"""A write-only, forward-only file that computes the md5 of what it writes (contract.md §7, "md5").

It refuses `seek`, so zipfile (and XlsxWriter, through it) streams with data
descriptors instead of rewriting headers: the md5 is of the bytes as stored,
with no second read.
"""

from __future__ import annotations

import hashlib
import io
from typing import BinaryIO


class HashingFile(io.RawIOBase):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 -- closed by close()
        self._md5 = hashlib.md5()
        self._size = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:  # type: ignore[override]
        self._md5.update(data)
        self._file.write(data)
        written = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
        self._size += written
        return written

    def tell(self) -> int:
        return self._size

    def seek(self, *args, **kwargs) -> int:
        raise io.UnsupportedOperation("forward only")

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        super().close()

    def hexdigest(self) -> str:
        return self._md5.hexdigest()

    @property
    def size(self) -> int:
        return self._size
