"""Two real demo subtypes for the quickstart (conf/embedded.ini) and conf/supervisor.ini.

They write real files under DLSUPERVISOR_EXPORT_DIR (default ./var/exports):
`url` is the file's file:// url and `md5` the md5 of its bytes.

    CsvExport  single-item: data {"columns": [...], "rows": [[...], ...]} -> one CSV
    ZipExport  multi-item:  data {"files": {"a.csv": [[...], ...], ...}} -> one item per
               file, plus one item that zips them all
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import zipfile

from dlsupervisor.model import DownloadItem, DownloadTaskMain
from dlsupervisor.task import DownloadTaskBase, SubTypeInfo


def export_dir() -> str:
    path = os.path.abspath(os.environ.get("DLSUPERVISOR_EXPORT_DIR", "./var/exports"))
    os.makedirs(path, exist_ok=True)
    return path


def render_csv(columns: list[str] | None, rows: list[list[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if columns:
        writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def publish(name: str, body: bytes) -> tuple[str, str, str]:
    """Write the file atomically; return (url, md5, file_name)."""
    path = os.path.join(export_dir(), name)
    temporary = f"{path}.part"
    with open(temporary, "wb") as handle:
        handle.write(body)
    os.replace(temporary, path)
    return f"file://{path}", hashlib.md5(body).hexdigest(), name


class CsvExport(DownloadTaskBase):
    task_info = SubTypeInfo(task_name="CsvExport", type=1, sub_type=101, queue_key="csv_export")

    def get_validated_data_params(self, task_item_id: int, data: str) -> dict | None:
        obj = json.loads(data)
        if not isinstance(obj, dict) or not isinstance(obj.get("rows"), list):
            return None
        return obj

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple[str, str, str]:
        body = render_csv(data_obj.get("columns"), data_obj["rows"])
        name = f"{data_obj.get('name', 'export')}-{task_item.task_id}-{task_item.id}.csv"
        return publish(name, body)


class ZipExport(DownloadTaskBase):
    task_info = SubTypeInfo(
        task_name="ZipExport", type=2, sub_type=102, queue_key="zip_export", is_multi_task=True
    )

    def split_task(self, task: DownloadTaskMain) -> list[DownloadItem]:
        files = json.loads(task.data or "{}").get("files") or {}
        parts = [{"file": name, "rows": rows} for name, rows in files.items()]
        parts.append({"zip": True, "files": files})
        return [DownloadItem(org_id=task.org_id, data=json.dumps(part, ensure_ascii=False)) for part in parts]

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple[str, str, str]:
        if data_obj.get("zip"):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for name, rows in sorted(data_obj["files"].items()):
                    archive.writestr(name, render_csv(None, rows))
            return publish(f"task-{task_item.task_id}.zip", buffer.getvalue())
        return publish(f"task-{task_item.task_id}-{data_obj['file']}", render_csv(None, data_obj["rows"]))
