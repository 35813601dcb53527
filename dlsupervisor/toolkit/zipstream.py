"""A zip written forward only, entry by entry, with its md5 (contract.md §7, store_zip).

Each source is a path (read in chunks), bytes, or an iterable of bytes (written as
it comes, ZIP64 from the start since its size is unknown): a zip of gigabytes
never sits in memory.  Already-compressed formats are stored, not deflated again.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterable
from typing import Union

from dlsupervisor.toolkit.hashing import HashingFile
from dlsupervisor.toolkit.names import sanitise

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Iterable[bytes]]
COMPRESSED = frozenset(
    (".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".xlsx", ".docx", ".pptx", ".jpg", ".jpeg")
    + (".png", ".gif", ".webp", ".mp3", ".mp4", ".m4a", ".aac", ".ogg", ".opus", ".wma", ".amr", ".mov")
    + (".avi", ".mkv", ".pdf")
)
CHUNK = 1 << 20


def entry_name(name: str) -> str:
    """Each part of an entry's path sanitised: no absolute paths, no `..` (zip slip)."""
    parts = [sanitise(part) for part in str(name).replace("\\", "/").split("/") if part not in ("", ".")]
    return "/".join(parts) or sanitise(name)


def compression(name: str) -> int:
    return zipfile.ZIP_STORED if os.path.splitext(name)[1].lower() in COMPRESSED else zipfile.ZIP_DEFLATED


class ZipStream:
    """Entries go straight to `path`; `close()` returns the md5 of the whole zip."""

    def __init__(self, path: str, *, force_zip64: bool = False) -> None:
        self.raw = HashingFile(path)
        self.zip = zipfile.ZipFile(self.raw, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=6)
        self.force_zip64 = force_zip64
        self.names: set[str] = set()

    def _unique(self, name: str) -> str:
        name, number = entry_name(name), 1
        stem, suffix = os.path.splitext(name)
        while name in self.names:
            number += 1
            name = f"{stem}-{number}{suffix}"
        self.names.add(name)
        return name

    def add(self, name: str, source: Source) -> None:
        name = self._unique(name)
        method = compression(name)
        if isinstance(source, (bytes, bytearray, memoryview)):
            info = zipfile.ZipInfo(name, date_time=_now())
            info.compress_type = method
            info.external_attr = 0o644 << 16
            with self.zip.open(info, "w", force_zip64=self.force_zip64) as entry:
                entry.write(source)
        elif isinstance(source, (str, os.PathLike)):
            info = zipfile.ZipInfo.from_file(os.fspath(source), name)
            info.compress_type = method
            with open(source, "rb") as src, self.zip.open(info, "w", force_zip64=self.force_zip64) as entry:
                shutil.copyfileobj(src, entry, CHUNK)
        else:
            info = zipfile.ZipInfo(name, date_time=_now())
            info.compress_type = method
            info.external_attr = 0o644 << 16
            with self.zip.open(info, "w", force_zip64=True) as entry:
                for chunk in source:
                    entry.write(chunk)

    def close(self) -> str:
        self.zip.close()
        self.raw.close()
        return self.raw.hexdigest()

    def discard(self) -> None:
        try:
            self.zip.close()
        except Exception:  # the half-made zip is deleted with its directory
            pass
        self.raw.close()


def _now() -> tuple[int, int, int, int, int, int]:
    import time

    return time.localtime()[:6]
