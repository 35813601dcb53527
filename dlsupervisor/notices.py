"""Completion notices (contract.md §9), delivered by a worker of the task's subtype.

A notice is a row of work like an item: created with its task's closing (store
close_tasks), claimed by a conditional update that holds it for a while (a
worker that dies holding it lets it come due again), delivered at least once,
and recorded once; a delivered one is never read again.  Workers deliver due
notices between items, so a notice delays the next export by at most one
delivery: an `on_task_finished` hook under the subtype's timeout (the master
times it out like an export, slot state NOTICE), or one POST with a short
HTTP timeout.  Failures are retried with a doubling backoff until `notify_for`
has passed since the task closed; then the notice is given up, and logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from dlsupervisor import remarks
from dlsupervisor.config import SubtypeSettings
from dlsupervisor.errors import Aborted
from dlsupervisor.model import DownloadTaskMain
from dlsupervisor.slots import NullSlot, Slot, SlotState
from dlsupervisor.store.records import NoticeRef, NoticeState

log = logging.getLogger("dlsupervisor.notices")

HTTP_TIMEOUT = 10.0  # seconds one POST may take: a notice never holds up exports for long
BACKOFF_BASE = 1.0  # seconds before the first retry, doubling
BACKOFF_MAX = 3600.0
CHECK_EVERY = 1.0  # seconds between a worker's looks for due notices
BATCH = 5  # notices one look takes at most, before the worker goes back to exports
DELIVERY_HEADER = "X-Dlsupervisor-Delivery"
SIGNATURE_HEADER = "X-Dlsupervisor-Signature"


class NoticeFailed(Exception):
    """A webhook answered, but not with 2xx."""


def backoff(attempts: int) -> float:
    """Seconds before the next try, after `attempts` tries."""
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempts - 1))


def delivery_id(task_id: int, status: int) -> str:
    """The same on every retry of one notice, so a receiver can drop duplicates."""
    return f"{task_id}:{int(status)}"


def body(task: DownloadTaskMain, status: int, items: list[dict[str, Any]]) -> bytes:
    """The JSON a webhook receives; `status` is the one the task closed with."""
    listed = [{k: item[k] for k in ("id", "file_name", "url", "md5")} for item in items]
    payload = {
        "task_id": task.id,
        "org_id": task.org_id,
        "status": int(status),
        "remark": task.remark,
        "items": listed,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(secret: str, data: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def post(url: str, data: bytes, delivery: str, secret: str, timeout: float = HTTP_TIMEOUT) -> int:
    """POST the notice; its HTTP status if 2xx, else NoticeFailed (or the urllib error)."""
    headers = {
        "Content-Type": "application/json",
        DELIVERY_HEADER: delivery,
        SIGNATURE_HEADER: signature(secret, data),
        "User-Agent": "dlsupervisor",
    }
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            code = response.status
    except urllib.error.HTTPError as exc:
        raise NoticeFailed(f"HTTP {exc.code}") from None
    if not 200 <= code < 300:
        raise NoticeFailed(f"HTTP {code}")
    return code


class Notices:
    """One worker's delivery of its subtype's due notices."""

    def __init__(
        self,
        sub: SubtypeSettings,
        sub_type: int,
        handler: Any,
        store: Any,
        secret: str,
        call: Callable[[Callable[[], Any]], Any],
        slot: Slot | NullSlot,
    ) -> None:
        """`call` runs a store call through the worker's outage and refusal handling."""
        self.sub, self.sub_type, self.handler, self.store = sub, sub_type, handler, store
        self.secret, self.call, self.slot = secret, call, slot
        self.next_check = 0.0

    def applicable(self, kind: str) -> bool:
        if kind == "hook":
            return callable(getattr(self.handler, "on_task_finished", None))
        return bool(self.sub.notify_url)

    def deliver_due(self, now: float | None = None) -> int:
        """Deliver what is due (at most BATCH, at most once per CHECK_EVERY); how many tried."""
        now = time.monotonic() if now is None else now
        if now < self.next_check or not (self.applicable("hook") or self.applicable("webhook")):
            return 0  # a subtype with neither never reads the table (the seed's scripts lack it)
        self.next_check = now + CHECK_EVERY
        due = self.call(lambda: self.store.due_notices(self.sub_type, self.sub.notify_for, BATCH))
        tried = 0
        for notice in due or ():
            if notice.overdue:
                self._record(notice, 0, NoticeState.GIVEN_UP, None)
                log.error("task %d: %s notice undeliverable for %gs; given up", *self._ids(notice))
            elif not self.applicable(notice.kind):
                self._record(notice, 0, NoticeState.NOT_APPLICABLE, None)
            elif self.call(lambda n=notice: self.store.claim_notice(n, self._hold())):
                tried += 1
                self._deliver(notice)
        return tried

    def _ids(self, notice: NoticeRef) -> tuple[int, str, float]:
        return notice.task_id, notice.kind, self.sub.notify_for

    def _hold(self) -> float:
        """How long a claim keeps a notice from others: past its timeout and the kill."""
        limit = self.sub.timeout if self.sub.timeout else 3600.0
        return max(limit, HTTP_TIMEOUT) + 60.0

    def _deliver(self, notice: NoticeRef) -> None:
        self.slot.write(SlotState.NOTICE, notice.task_id)
        try:
            self._send(notice)
        except Aborted:
            raise
        except BaseException as exc:  # a hook's or a receiver's failure: retried later
            delay = backoff(notice.attempts + 1)
            error = remarks.error_text(remarks.NOTICE_FAILED, exc)
            self._record(notice, 1, NoticeState.PENDING, error, delay)
            log.warning(
                "task %d: %s notice failed (%s); retry in %gs", notice.task_id, notice.kind, error, delay
            )
        else:
            self._record(notice, 1, NoticeState.DELIVERED, None)
            log.info(
                "task %d: %s notice delivered (attempt %d)", notice.task_id, notice.kind, notice.attempts + 1
            )
        finally:
            self.slot.write(SlotState.IDLE)

    def _send(self, notice: NoticeRef) -> None:
        task = self.call(lambda: self.store.load_task(notice.task_id))
        if task is None:
            raise LookupError(f"task {notice.task_id} is gone")
        if notice.kind == "hook":
            self.handler.on_task_finished(task)
            return
        items = self.call(lambda: self.store.notice_items(notice.task_id))
        post(
            self.sub.notify_url,
            body(task, notice.status, items),
            delivery_id(task.id, notice.status),
            self.secret,
        )

    def _record(
        self, notice: NoticeRef, claimed: int, state: NoticeState, error: str | None, retry_in: float = 0
    ) -> None:
        """`claimed`: 1 after this worker's claim (which counted an attempt), else 0."""
        attempts = notice.attempts + claimed
        self.call(lambda: self.store.finish_notice(notice, attempts, state, error, retry_in))
