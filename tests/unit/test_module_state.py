"""defects.md #28: the original kept module-level registries (SUB_TYPE_QUEUE_DICT = {}).
No module of dlsupervisor holds mutable state at module level: settings are passed down."""

from __future__ import annotations

import importlib
import pkgutil

import dlsupervisor

MUTABLE = (dict, list, set, bytearray)


def test_no_module_holds_mutable_state():
    found = []
    for info in pkgutil.walk_packages(dlsupervisor.__path__, "dlsupervisor."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if not name.startswith("__") and isinstance(value, MUTABLE):
                found.append(f"{info.name}.{name}")
    assert found == []
