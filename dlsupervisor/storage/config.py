"""The [storage] section (contract.md §7): its keys, defaults and checks.

config.py reads the file and reports errors; this module only knows the keys, so
storage settings can be added without touching the rest of config.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from dlsupervisor.values import boolean

ENV_ACCESS_KEY = "DLSUPERVISOR_STORAGE_ACCESS_KEY"
ENV_SECRET_KEY = "DLSUPERVISOR_STORAGE_SECRET_KEY"
BACKENDS = ("local", "s3")
ADDRESSING = ("auto", "virtual", "path")


@dataclass(frozen=True)
class StorageSettings:
    backend: str = "local"
    path: str = "./var/files"  # local: the files; both: the workers' temporary directories
    base_url: str = ""
    bucket: str = ""
    endpoint_url: str = ""
    region: str = ""
    addressing_style: str = "auto"
    prefix: str = ""
    delete_expired: bool = True

    @property
    def tmp_root(self) -> str:
        """Workers' private temporary directories: on the storage's filesystem, so a local
        `put` is an atomic rename; hidden (a dot directory) from keys."""
        return os.path.join(self.path, ".tmp")


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse


def _text(text: str) -> str:
    return text


def _url(text: str) -> str:
    if text and not text.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// url")
    return text.rstrip("/")


STORAGE_KEYS: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {
        "backend": _choice(BACKENDS),
        "path": _text,
        "base_url": _url,
        "bucket": _text,
        "endpoint_url": _url,
        "region": _text,
        "addressing_style": _choice(ADDRESSING),
        "prefix": _text,
        "delete_expired": boolean,
    }
)


def build(values: Mapping[str, Any]) -> tuple[StorageSettings, tuple[str, str] | None]:
    """Settings from parsed values, path made absolute (relative to the working directory),
    and the (key, problem) of a combination that cannot work, if any."""
    settings = StorageSettings(**values)
    settings = replace(
        settings,
        path=os.path.abspath(settings.path or StorageSettings.path),
        base_url=settings.base_url.rstrip("/"),
        endpoint_url=settings.endpoint_url.rstrip("/"),
    )
    if settings.backend == "s3" and not settings.bucket:
        return settings, ("bucket", "missing (backend = s3 needs a bucket)")
    if settings.prefix.startswith("/") or ".." in settings.prefix.split("/"):
        return settings, ("prefix", "must not start with / or contain ..")
    return settings, None
