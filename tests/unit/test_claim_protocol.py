"""remarks.py owns the claim protocol: the patterns the stores pass to SQL agree with its parser."""

from __future__ import annotations

import sqlite3

from dlsupervisor import remarks
from dlsupervisor.store.mysql import MYSQL, _sql
from dlsupervisor.store.sql import claim_sql
from dlsupervisor.store.sqlite import SQLITE


def _token_chosen_by_sql(holder: str, remark: str | None) -> str:
    """The token the claim's CASE picks for an item with this remark (LIKE as SQLite runs it)."""
    cases, first = remarks.claim_tokens(holder)
    with sqlite3.connect(":memory:") as conn:
        for pattern, token in cases:
            if remark is not None and conn.execute("SELECT ? LIKE ?", (remark, pattern)).fetchone()[0]:
                return token
    return first


def test_the_claim_picks_the_attempt_next_attempt_computes():
    holder = remarks.owner("host", 7)
    remark = None
    for _ in range(remarks.MAX_ATTEMPTS - 1):
        token = _token_chosen_by_sql(holder, remark)
        assert token == remarks.token_of(holder, remarks.next_attempt(remark))
        assert remarks.held_by(token, holder)
        _, remark = remarks.requeue_outcome(token, "owner lost")
    for other in ("cancelled", "invalid data: x", "requeued: odd text"):
        assert _token_chosen_by_sql(holder, other) == remarks.token_of(holder, 1)


def test_split_claims_match_split_tokens_only():
    with sqlite3.connect(":memory:") as conn:
        like = lambda text: conn.execute("SELECT ? LIKE ?", (text, remarks.split_claims())).fetchone()[0]  # noqa: E731
        assert like(remarks.split_token("host", 1)) == 1
        assert like(remarks.claim_token("host", 1, 1)) == 0


def test_no_remark_text_or_status_number_is_spelled_in_the_claim_sql():
    for dialect in (MYSQL, SQLITE):
        sql, args = claim_sql(dialect, 1, "host:1", 15)
        for text in (remarks.RUNNING_ON, remarks.REQUEUED, "attempt"):
            assert text not in sql
        assert "= 1" not in sql and "= 0" not in sql
        assert sql.count("?") == len(args)
    assert "%s" in _sql("a = ?")
