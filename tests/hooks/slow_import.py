"""A handler module whose import takes as many seconds as the file DLSV_SLOW_IMPORT names
says (no file: at once), so a test can make one reload's handler check slow."""

import os
import time

from dlsupervisor import SubTypeInfo
from tests.hooks.behaviours import Behaviour

_path = os.environ.get("DLSV_SLOW_IMPORT")
if _path and os.path.exists(_path):
    with open(_path, encoding="utf-8") as _handle:
        time.sleep(float(_handle.read() or 1))


class SlowImport(Behaviour):
    """Behaviour on its own sub_type, from a module that can be slow to import."""

    task_info = SubTypeInfo(task_name="SlowImport", type=10, sub_type=16, queue_key="slow_import")
