"""A test handler on the export toolkit: what it writes is read from its item's data.

data: do = rows | file | zip; name; columns; rows; max_rows; raise_at (row index: raise
there, mid-file); hang_at (row index: mark HANG in data["log"], then sleep); body (file);
files (zip: entry name -> text); generate (N rows [i] instead of `rows`); total (true:
open_output(total=the number of rows)); pause (seconds to sleep after each `pause_every`-th
row, so a test sees the export midway).
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
        rows = (
            [[i] for i in range(data_obj["generate"])] if "generate" in data_obj else data_obj.get("rows", [])
        )
        total = len(rows) if data_obj.get("total") else None
        every, pause = int(data_obj.get("pause_every", 1000)), float(data_obj.get("pause", 0))
        with self.open_output(
            name, columns=data_obj.get("columns"), max_rows=data_obj.get("max_rows"), total=total
        ) as out:
            for index, row in enumerate(rows):
                if data_obj.get("raise_at") == index:
                    raise RuntimeError("boom mid-file")
                out.write_row(row)
                if data_obj.get("hang_at") == index:
                    mark(data_obj, f"HANG {task_item.id} {os.getpid()}")
                    time.sleep(600)
                if pause and index % every == 0:
                    time.sleep(pause)  # just after a report (at rows 0, every, 2 * every...)
        return out.result
