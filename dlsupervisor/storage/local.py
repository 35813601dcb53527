"""Files in a directory tree: `path/KEY`, linked as `base_url/KEY` or a file:// path."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from urllib.parse import quote

from dlsupervisor.storage.base import StorageError, describe
from dlsupervisor.storage.config import StorageSettings


class LocalStorage:
    def __init__(self, settings: StorageSettings) -> None:
        self.root = settings.path
        self.base_url = settings.base_url

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def put(self, path: str, key: str) -> None:
        """A rename (the temporary directory is on this filesystem), so the key appears whole."""
        target = self._path(key)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.replace(path, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                staged = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.part")
                shutil.copyfile(path, staged)
                os.replace(staged, target)
        except OSError as exc:
            raise StorageError(describe(exc)) from None

    def delete(self, key: str) -> None:
        target = self._path(key)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(target)
            _prune(os.path.dirname(target), self.root)
        except OSError as exc:
            raise StorageError(describe(exc)) from None

    def link(self, key: str, expires_in: int) -> str:
        if self.base_url:
            return f"{self.base_url}/{quote(key)}"
        return f"file://{self._path(key)}"


def _prune(directory: str, root: str) -> None:
    """Remove the key's now-empty directories (item, task, org), never the root."""
    while os.path.abspath(directory) != os.path.abspath(root) and directory.startswith(root):
        try:
            os.rmdir(directory)
        except OSError:
            return
        directory = os.path.dirname(directory)
