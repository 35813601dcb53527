"""File names that are safe as the last part of a storage key (contract.md §7, "File names")."""

from __future__ import annotations

import os
import unicodedata

MAX_NAME = 200
FALLBACK = "export"


def sanitise(name: str) -> str:
    """The name with separators, control characters, `..` and leading dots removed; Unicode kept.

    Users' data picks names (`{"name": "../../x"}`): what is left is one path component,
    at most MAX_NAME characters, keeping its suffix when cut (the suffix picks the format).
    """
    text = unicodedata.normalize("NFC", str(name))
    cleaned = "".join(
        "_" if ch in "/\\" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text
    )
    while ".." in cleaned:
        cleaned = cleaned.replace("..", ".")
    cleaned = cleaned.strip().lstrip("._ ")
    if not cleaned.strip("._ "):
        cleaned = FALLBACK + (os.path.splitext(cleaned)[1] if cleaned.count(".") else "")
    if len(cleaned) > MAX_NAME:
        stem, suffix = os.path.splitext(cleaned)
        suffix = suffix if len(suffix) <= 16 else ""
        cleaned = stem[: MAX_NAME - len(suffix)] + suffix
    return cleaned


def part_name(name: str, number: int) -> str:
    """`name.xlsx`, then `name-2.xlsx`, `name-3.xlsx`... for the parts of a rolled-over output."""
    if number == 1:
        return name
    stem, suffix = os.path.splitext(name)
    return f"{stem}-{number}{suffix}"


def with_suffix(name: str, suffix: str) -> str:
    return os.path.splitext(name)[0] + suffix
