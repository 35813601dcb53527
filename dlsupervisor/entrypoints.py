"""Entry points named, not imported: the user API's one call into the runtime.

task.py is imported by nearly every module (handlers, outcomes, the worker), and
`DownloadTaskBase.start()` runs the whole master, which reaches task.py again
through its workers.  Importing the runtime from task.py would make the import
graph a loop; naming it here and resolving it at call time keeps it one-way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

STANDALONE_HANDLER = "dlsupervisor.standalone:run_handler"  # DownloadTaskBase.start()


def resolve(reference: str) -> Callable[..., Any]:
    """The callable a "module:function" reference names, importing its module now."""
    module_name, _, name = reference.partition(":")
    return getattr(importlib.import_module(module_name), name)
