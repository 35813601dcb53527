"""A test handler on the export toolkit: what it writes is read from its item's data.

data: do = rows | file | zip; name; columns; rows; max_rows; raise_at (row index: raise
there, mid-file); hang_at (row index: mark HANG in data["log"], then sleep); body (file);
files (zip: entry name -> text).
"""

from __future__ import annotations

import os
import time

from dlsupervisor import DownloadTaskBase, SubTypeInfo
from dlsupervisor.model import DownloadItem
from tests.hooks.behaviours import mark


class ToolkitExport(DownloadTaskBase):
    task_info = SubTypeInfo(task_name="ToolkitExport", type=20, sub_type=25, queue_key="toolkit")

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple:
        do = data_obj.get("do", "rows")
        name = data_obj.get("name", "out.csv")
        if do == "file":
            return self.store_file(data_obj.get("body", "").encode(), name)
        if do == "zip":
            files = data_obj.get("files", {})
            return self.store_zip(name, [(entry, text.encode()) for entry, text in files.items()])
        with self.open_output(
            name, columns=data_obj.get("columns"), max_rows=data_obj.get("max_rows")
        ) as out:
            for index, row in enumerate(data_obj.get("rows", [])):
                if data_obj.get("raise_at") == index:
                    raise RuntimeError("boom mid-file")
                out.write_row(row)
                if data_obj.get("hang_at") == index:
                    mark(data_obj, f"HANG {task_item.id} {os.getpid()}")
                    time.sleep(600)
        return out.result
