"""The `remark` texts of contract.md §5, and the attempt count they carry: the claim protocol's owner.

A running item's remark is its claim token, `running on HOST:PID attempt N`:
it names the owner (architecture.md, invariant 5) and fences every later write, so a
late result from a killed or requeued export matches nothing.  Requeues carry
the count forward, so attempts survive a crash of the whole host.

Every text a claim, split claim, requeue or cancellation writes into `remark`
is built (and parsed) here; the stores take these texts and LIKE patterns as
parameters and spell none of them in SQL.
"""

from __future__ import annotations

import re

from dlsupervisor.model import ItemStatus

REMARK_MAX = 256  # download_item.remark and download_task_main.remark are varchar(256)
MAX_ATTEMPTS = 3  # the third requeue gives up

INVALID_DATA = "invalid data:"
REJECTED = "rejected:"
EXPORT_FAILED = "export failed:"
TIMEOUT = "timeout:"
WORKER_DIED = "worker died:"
REQUEUED = "requeued:"
GAVE_UP = "gave up:"
CANCELLED = "cancelled"
SPLIT_FAILED = "split failed:"
NOTICE_FAILED = "notice failed:"  # dlsupervisor_notice.last_error (varchar(256) too)
RUNNING_ON = "running on "
SPLITTING_ON = "splitting on "

_ATTEMPT = re.compile(r"attempt (\d+)")


def fit(text: str, limit: int = REMARK_MAX) -> str:
    """Cut to the column's size, marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def error_text(prefix: str, exc: BaseException) -> str:
    """`prefix ExceptionType: message`, one line, fitted to the column."""
    message = " ".join(str(exc).split())
    name = type(exc).__name__
    return fit(f"{prefix} {name}: {message}" if message else f"{prefix} {name}")


def owner(host: str, pid: int) -> str:
    """Who holds a claim: HOST:PID (the host name cut so a token always fits the column)."""
    return f"{host[:64]}:{pid}"


def claim_token(host: str, pid: int, attempt: int) -> str:
    return token_of(owner(host, pid), attempt)


def token_of(holder: str, attempt: int) -> str:
    """The claim token of `holder` (HOST:PID) at this attempt."""
    return f"{RUNNING_ON}{holder} attempt {attempt}"


def held_by(token: str | None, holder: str) -> bool:
    """Whether a remark is a claim token of `holder` (at any attempt)."""
    return bool(token) and token.startswith(f"{RUNNING_ON}{holder} attempt ")


def split_token(host: str, pid: int) -> str:
    return f"{SPLITTING_ON}{owner(host, pid)}"


def split_claims() -> str:
    """LIKE pattern matching every split claim (a task remark while a worker splits it)."""
    return f"{SPLITTING_ON}%"


def claim_tokens(holder: str) -> tuple[list[tuple[str, str]], str]:
    """The token a claim writes, chosen by the SQL from the item's remark without parsing it.

    Returns ([(LIKE pattern of a requeue remark at attempt N, token at N + 1), ...], token
    at attempt 1 for any other remark): what `next_attempt` computes, for every attempt a
    requeue can record (it gives up at MAX_ATTEMPTS), highest first.
    """
    cases = [(f"{REQUEUED}%(attempt {n} of %)", token_of(holder, n + 1)) for n in range(MAX_ATTEMPTS, 0, -1)]
    return cases, token_of(holder, 1)


def attempt_of(remark: str | None) -> int:
    """Attempts already made, as recorded in a claim token or a requeue remark."""
    if not remark or not (remark.startswith(RUNNING_ON) or remark.startswith(REQUEUED)):
        return 0
    found = _ATTEMPT.findall(remark)
    return int(found[-1]) if found else 0


def next_attempt(remark: str | None) -> int:
    return attempt_of(remark) + 1


def requeue_outcome(token: str, reason: str) -> tuple[int, str]:
    """(status, remark) for an item taken back from its owner: READY, or FAILED at the limit."""
    attempt = max(attempt_of(token), 1)
    if attempt >= MAX_ATTEMPTS:
        return ItemStatus.FAILED, fit(f"{GAVE_UP} {reason} (requeued {attempt} times)")
    return ItemStatus.READY, fit(f"{REQUEUED} {reason} (attempt {attempt} of {MAX_ATTEMPTS})")


def rollup_remark(total: int, done: int, failed: int) -> str | None:
    """The task remark of a finished multi-item task: silent when every file is ready."""
    if failed and done:
        return f"{done} of {total} files ready, {failed} failed"
    return None
