"""Three real demo subtypes on the export toolkit, for the quickstart (conf/embedded.ini) and
conf/supervisor.ini.  Files go to the [storage] section's place (default ./var/files), under
`ORG/TASK/ITEM/`; `url` is their link and `md5` the md5 of their bytes.

    CsvExport   single-item: data {"name": ..., "columns": [...], "rows": [[...], ...]} -> one CSV
    ZipExport   multi-item:  data {"files": {"a.csv": [[...], ...], ...}} -> one item per file,
                plus one item that zips them all
    XlsxExport  single-item: data like CsvExport's -> one XLSX (extra dlsupervisor[xlsx]);
                `YYYY-MM-DD` text becomes a date cell, numbers stay numbers
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator

from dlsupervisor.model import DownloadItem, DownloadTaskMain
from dlsupervisor.task import DownloadTaskBase, SubTypeInfo


def rows_of(data: dict) -> dict | None:
    """The data of a rows export, or None (the item is rejected) when it has no rows list."""
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        return None
    return data


def csv_lines(rows: list[list[object]]) -> Iterator[bytes]:
    """A CSV as an iterable of bytes, one row at a time: what store_zip streams."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()


def typed(value: object) -> object:
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value


class CsvExport(DownloadTaskBase):
    task_info = SubTypeInfo(task_name="CsvExport", type=1, sub_type=101, queue_key="csv_export")

    def get_validated_data_params(self, task_item_id: int, data: str) -> dict | None:
        return rows_of(json.loads(data))

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple[str, str, str]:
        name = f"{data_obj.get('name', 'export')}.csv"
        with self.open_output(name, columns=data_obj.get("columns"), total=len(data_obj["rows"])) as out:
            for row in data_obj["rows"]:
                out.write_row(row)
        return out.result


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
            files = sorted(data_obj["files"].items())
            return self.store_zip(f"task-{task_item.task_id}.zip", [(n, csv_lines(r)) for n, r in files])
        with self.open_output(data_obj["file"]) as out:
            for row in data_obj["rows"]:
                out.write_row(row)
        return out.result


class XlsxExport(DownloadTaskBase):
    task_info = SubTypeInfo(task_name="XlsxExport", type=3, sub_type=103, queue_key="xlsx_export")

    def get_validated_data_params(self, task_item_id: int, data: str) -> dict | None:
        return rows_of(json.loads(data))

    def export(self, task_item: DownloadItem, data_obj: dict) -> tuple[str, str, str]:
        name = f"{data_obj.get('name', 'export')}.xlsx"
        with self.open_output(name, columns=data_obj.get("columns"), total=len(data_obj["rows"])) as out:
            for row in data_obj["rows"]:
                out.write_row([typed(value) for value in row])
        return out.result
