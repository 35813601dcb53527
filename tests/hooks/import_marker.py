"""A handler module that records which processes import it (architecture.md, invariant 3's witness)."""

import os

from tests.hooks.behaviours import Behaviour

_path = os.environ.get("DLSV_IMPORT_LOG")
if _path:
    with open(_path, "a", encoding="utf-8") as _handle:
        _handle.write(f"{os.getpid()}\n")


class Marked(Behaviour):
    """Behaviour, from a module whose import leaves a trace."""
