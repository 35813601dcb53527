"""Formula injection (OWASP "CSV injection"): a text cell that a spreadsheet would evaluate."""

from __future__ import annotations

TRIGGERS = frozenset("=+-@\t\r")


def is_formula_like(value: str) -> bool:
    """Excel and LibreOffice evaluate a cell whose text starts with one of these."""
    return value[:1] in TRIGGERS


def neutralise(value: str) -> str:
    """OWASP's advice for CSV: a leading single quote, which the spreadsheet shows as text."""
    return "'" + value if value[:1] in TRIGGERS else value
