"""The two wake-up messages: `i:ITEM_ID` (export an item), `s:TASK_ID` (split a task)."""

from __future__ import annotations

from dataclasses import dataclass

ITEM = "i"
Place = tuple[bool, int]  # (pinned, place in its org's line, 1 first): where a wake-up queues
SPLIT = "s"


def item_message(item_id: int) -> str:
    return f"{ITEM}:{item_id}"


def split_message(task_id: int) -> str:
    return f"{SPLIT}:{task_id}"


def parse_message(message: str) -> tuple[str, int] | None:
    """(kind, id), or None for anything that is not one of ours."""
    kind, _, number = message.partition(":")
    if kind not in (ITEM, SPLIT) or not number.isdigit():
        return None
    return kind, int(number)


@dataclass(frozen=True)
class Popped:
    """A message taken from a queue, with what it takes to give it back in its place."""

    text: str
    score: float | None = None  # its Redis score (push time, ms): its place in the queue
