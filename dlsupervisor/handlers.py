"""Importing handler classes: in workers after fork, in `check` and `submit`; never in the master.

Handlers may sit beside their configuration file.  A business application's `Client`
imports them too, so a lookup there leaves `sys.path` as it was; only a worker, our own
process, keeps the directory on it (`allow_imports_beside_config`).
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from dlsupervisor.config import Settings, SubtypeSettings
from dlsupervisor.errors import HandlerLoadError
from dlsupervisor.store import Registration
from dlsupervisor.task import DownloadTaskBase, SubTypeInfo


def import_handler(settings: Settings, sub: SubtypeSettings) -> type[DownloadTaskBase]:
    """The class named by `handler = module:Class`, or one HandlerLoadError line."""
    module_name, _, attr = sub.handler.partition(":")
    where = f"{settings.path}: [subtype:{sub.name}] handler"
    try:
        module = _import_module(module_name, config_dir(settings))
    except Exception as exc:
        raise HandlerLoadError(f"{where}: cannot import {module_name}: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type) or not issubclass(cls, DownloadTaskBase):
        raise HandlerLoadError(f"{where}: {sub.handler} is not a DownloadTaskBase subclass")
    return cls


def config_dir(settings: Settings) -> str:
    return os.path.dirname(settings.path)


def allow_imports_beside_config(settings: Settings) -> None:
    """For a worker: its handler's own later imports of modules beside the file keep working."""
    directory = config_dir(settings)
    if directory not in sys.path:
        sys.path.append(directory)


def _import_module(module_name: str, directory: str) -> ModuleType:
    """Import as is; only when the module itself is not found, look beside the file, with
    the directory on sys.path for this import alone (appended: installed modules win)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if directory in sys.path or not (module_name == missing or module_name.startswith(f"{missing}.")):
            raise  # found nowhere, or a dependency of the module is what is missing
    sys.path.append(directory)
    try:
        return importlib.import_module(module_name)
    finally:
        for index in range(len(sys.path) - 1, -1, -1):  # ours: the last one, whatever the module added
            if sys.path[index] == directory:
                del sys.path[index]
                break


def subtype_info(settings: Settings, sub: SubtypeSettings, cls: type[DownloadTaskBase]) -> SubTypeInfo:
    """The handler's task_info with the section's overrides applied."""
    base = cls.task_info
    where = f"{settings.path}: [subtype:{sub.name}]"
    if base is None and (sub.type is None or sub.sub_type is None):
        raise HandlerLoadError(f"{where} type: {sub.handler} has no task_info; give type and sub_type")
    return SubTypeInfo(
        task_name=base.task_name if base else sub.name,
        type=sub.type if sub.type is not None else base.type,
        sub_type=sub.sub_type if sub.sub_type is not None else base.sub_type,
        queue_key=sub.queue_key or (base.queue_key if base else sub.name),
        is_multi_task=sub.multi if sub.multi is not None else bool(base and base.is_multi_task),
    )


def registration(sub: SubtypeSettings, info: SubTypeInfo) -> Registration:
    return Registration(
        name=sub.name,
        type=info.type,
        sub_type=info.sub_type,
        queue_key=info.queue_key,
        multi=bool(info.is_multi_task),
        max_per_org=sub.max_per_org,
    )


def load(settings: Settings, sub: SubtypeSettings) -> tuple[type[DownloadTaskBase], SubTypeInfo]:
    cls = import_handler(settings, sub)
    return cls, subtype_info(settings, sub, cls)


def construct(cls: type[DownloadTaskBase], info: SubTypeInfo, settings: Settings) -> DownloadTaskBase:
    """Handler(task_info, config_path, logger_name), as contract.md §6 promises."""
    return cls(info, settings.path, f"dlsupervisor.{info.task_name}")


def check_all(settings: Settings) -> str | None:
    """Import every subtype's handler; the first problem as one line, or None."""
    seen: dict[int, str] = {}
    try:
        for sub in settings.subtypes:
            info = load(settings, sub)[1]
            if info.sub_type in seen:
                return (
                    f"{settings.path}: [subtype:{sub.name}] handler: sub_type {info.sub_type} "
                    f"is also served by [subtype:{seen[info.sub_type]}]"
                )
            seen[info.sub_type] = sub.name
    except HandlerLoadError as exc:
        return str(exc)
    return None
