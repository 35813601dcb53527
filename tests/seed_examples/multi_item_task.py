"""The original library's multi-item pattern, written the way its users wrote it:
`split_task` builds `DownloadItem()` objects by attribute assignment, statuses come
from `duyan_download_task.constants`, and `start()` runs it beside a config.ini.
"""

import datetime
import json

from duyan_download_task import DownloadTaskBase, SubTypeInfo
from duyan_download_task.constants import ItemStatus
from duyan_download_task.model import DownloadItem, DownloadTaskMain


class ReportPartsTask(DownloadTaskBase):
    task_info = SubTypeInfo(
        task_name="ReportPartsTask", type=11, sub_type=11, queue_key="report_parts_queue", is_multi_task=True
    )

    def __init__(self, config_path: str, logger_name: str):
        super().__init__(self.task_info, config_path, logger_name)

    def get_validated_data_params(self, task_item_id: int, data: str) -> dict or None:
        self._logger.info(f"item {task_item_id}: data {data}")
        return json.loads(data)

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple:
        file_name = f"report-{task_item.task_id}-{task_item.id}.csv"
        return f"https://files.example.com/{file_name}", "d41d8cd98f00b204e9800998ecf8427e", file_name

    def split_task(self, task: DownloadTaskMain) -> list:
        now = datetime.datetime.now()
        items = []
        for _ in range(2):
            item = DownloadItem()
            item.org_id = task.org_id
            item.task_id = task.id
            item.type = self.task_info.sub_type
            item.data = task.data
            item.status = ItemStatus.READY.value
            item.created_time = now
            item.last_updated_time = now
            items.append(item)
        return items


if __name__ == "__main__":
    ReportPartsTask("config.ini", "report_parts_task").start()
