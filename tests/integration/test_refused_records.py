"""A worker whose outcome the database refuses to record (a privilege revoked: not an
outage) retries the record with backoff, logged once per kind; it neither loses the
outcome nor crashes (issue 11).  One worker loop in-process against the real backends;
the refusal is a store that refuses the first record."""

from __future__ import annotations

import logging
from typing import Any

import pymysql
import pytest

from dlsupervisor.model import ItemStatus
from tests.process.test_daemon import marker_lines

pytestmark = pytest.mark.both_drivers  # also on mysqlclient (tests/conftest.py)


class RefusesFirstRecord:
    """The worker's store, with its first `record` refused as MySQL refuses a revoked UPDATE."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def record(self, *args: Any, **kwargs: Any) -> Any:
        if self.refused == 0:
            self.refused += 1
            raise pymysql.err.OperationalError(1142, "UPDATE command denied to user 'u'@'h'")
        return self._store.record(*args, **kwargs)


def test_a_refused_record_is_retried_not_lost(env, tmp_path, caplog):
    env.write_config()
    markers = tmp_path / "markers"
    _, (item_id,) = env.new_task({"do": "ok", "log": str(markers)}, status=1)
    worker = env.worker()
    worker.store = RefusesFirstRecord(worker.store)
    caplog.set_level(logging.INFO, "dlsupervisor.worker")
    assert worker.run_item(item_id) is True
    assert worker.store.refused == 1 and len(marker_lines(markers, "START")) == 1  # ran once
    assert env.db.item(item_id)["status"] == ItemStatus.DONE
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused == ["database refused a worker's call (OperationalError 1142); retrying with backoff"]
    assert "recovered: a worker's call succeeds again" in caplog.text
