"""run_dir/status.json: what the master knows about its children, for `status` and tests.

Written atomically (temporary file, then rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from typing import Any


def write(path: str, status: dict[str, Any]) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(status, handle, separators=(",", ":"))
    os.replace(temporary, path)


def read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
