"""A seed-style task script whose exports misbehave on request, to show that standalone
mode protects it as the daemon would.  data: {"hang": true} never returns, {"sleep": S}
takes S seconds, anything else returns at once; the url names the worker's pid.
PROTECTED_MAX_JOB and PROTECTED_TIMEOUT set the constructor's max_job and timeout.
"""

import json
import os
import time

from duyan_download_task import DownloadTaskBase, SubTypeInfo
from duyan_download_task.model import DownloadItem, DownloadTaskMain


class ProtectedTask(DownloadTaskBase):
    def get_validated_data_params(self, task_item_id: int, data: str) -> dict or None:
        return json.loads(data)

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple:
        if data_obj.get("hang"):
            while True:
                time.sleep(3600)
        time.sleep(float(data_obj.get("sleep", 0)))
        return f"pid:{os.getpid()}", "d41d8cd98f00b204e9800998ecf8427e", f"item-{task_item.id}.csv"

    def split_task(self, task: DownloadTaskMain) -> list:
        pass


if __name__ == "__main__":
    info = SubTypeInfo(
        task_name="ProtectedTask", type=10, sub_type=16, queue_key="protected_task_queue", is_multi_task=False
    )
    task = ProtectedTask(
        info,
        "config.ini",
        "protected_task",
        max_job=int(os.environ.get("PROTECTED_MAX_JOB", "1")),
        timeout=float(os.environ.get("PROTECTED_TIMEOUT", "600")),
    )
    task.start()
