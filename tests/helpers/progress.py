"""Counting the writes to dlsupervisor_progress exactly: test-only triggers bump a counter."""

from __future__ import annotations

from tests.helpers.db import Db


def count_writes(db: Db) -> None:
    """From now on every INSERT or UPDATE of a progress row adds one to `t_progress_writes`."""
    db.execute("CREATE TABLE t_progress_writes (n INTEGER NOT NULL)")
    db.execute("INSERT INTO t_progress_writes (n) VALUES (0)")
    for event in ("INSERT", "UPDATE"):
        body = "UPDATE t_progress_writes SET n = n + 1"
        if db.kind == "sqlite":
            body = f"BEGIN {body}; END"
        db.execute(
            f"CREATE TRIGGER t_progress_{event.lower()} AFTER {event} ON dlsupervisor_progress "
            f"FOR EACH ROW {body}"
        )


def writes(db: Db) -> int:
    return int(db.execute("SELECT n FROM t_progress_writes")[0]["n"])


def row(db: Db, item_id: int) -> dict | None:
    rows = db.execute("SELECT * FROM dlsupervisor_progress WHERE item_id = %s", (item_id,))
    return rows[0] if rows else None
