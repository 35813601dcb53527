"""References from the code to docs/ resolve to headings there, and no old-style one is left.

The code cites its documents in these forms (docs/architecture.md, docs/contract.md,
docs/defects.md):

    architecture.md, invariant N        (also: invariants 2, 5 and 6)
    architecture.md, habit N
    architecture.md, then a heading's title in double quotes
    contract.md §N                      (also: §4-§5, §3, §4, §5)
    defects.md #N                       (also: #3 and #4, #18, #19, #21)

Each must name a heading: `### N. ...` under `## Invariants` or `## Habits`, any heading
of architecture.md, `## §N ...`, `### #N — ...`.  Links between the documents (and from
the READMEs) must reach an existing file and heading too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCANNED = ("dlsupervisor", "tests", "bench")
LINKING = ("README.md", "bench/README.md", "docs/architecture.md", "docs/contract.md", "docs/defects.md")

# A list of numbers as prose writes it: 5 | 5 and 6 | 2, 5 and 6 | §4-§5 | #18, #19, #21.
NUMBERS = r"\d+(?:(?:\s*,\s*|\s+and\s+|\s*-\s*|\s*–\s*)(?:§|#)?\d+)*"
FORMS = {
    "invariant": re.compile(rf"architecture\.md,\s+invariants?\s+({NUMBERS})"),
    "habit": re.compile(rf"architecture\.md,\s+habits?\s+({NUMBERS})"),
    "section": re.compile(rf"contract\.md\s+§({NUMBERS})"),
    "defect": re.compile(rf"defects\.md\s+#({NUMBERS})"),
}
NAMED = re.compile(r'architecture\.md,\s+"([^"]+)"')

# The names of the documents these references replaced, spelled in pieces so that this
# file does not itself hold the references it forbids.
_D, _S, _T, _F = "DES" + "IGN", "SP" + "EC", "STY" + "LE", "DEF" + "ECTS"
OLD_FORMS = (
    rf"\b{_D}\s+invariant",
    rf'\b{_D}\s+"',
    rf"\b{_S}\s+§",
    rf"\b{_T}\s+habit",
    rf"\b{_F}\s+#",
    rf"seed/{_F}",
)
OLD = re.compile("|".join(OLD_FORMS))

LINK = re.compile(r"\]\(([^)\s]+?\.md)(?:#([^)\s]+))?\)")


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of every heading outside fenced code."""
    found, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6})\s+(.*?)\s*$", line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


def numbered_under(path: Path, section: str) -> set[int]:
    numbers, inside = set(), False
    for level, text in headings(path):
        if level == 2:
            inside = text == section
        elif inside and level == 3 and (match := re.match(r"(\d+)\.\s", text)):
            numbers.add(int(match.group(1)))
    return numbers


def prefixed(path: Path, mark: str) -> set[int]:
    return {int(m.group(1)) for _, text in headings(path) if (m := re.match(rf"{mark}(\d+)\s", text))}


def targets() -> dict[str, set]:
    arch = DOCS / "architecture.md"
    return {
        "invariant": numbered_under(arch, "Invariants"),
        "habit": numbered_under(arch, "Habits"),
        "section": prefixed(DOCS / "contract.md", "§"),
        "defect": prefixed(DOCS / "defects.md", "#"),
        "heading": {text for _, text in headings(arch)},
    }


def references(text: str) -> list[tuple[int, str, int | str]]:
    """(line, kind, target) of every reference in `text`."""
    found = []
    for kind, pattern in FORMS.items():
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found += [(line, kind, int(n)) for n in re.findall(r"\d+", match.group(1))]
    for match in NAMED.finditer(text):
        found.append((text.count("\n", 0, match.start()) + 1, "heading", match.group(1)))
    return found


def sources() -> list[Path]:
    """The .py files scanned; not this one, whose samples are not references."""
    here = Path(__file__).resolve()
    found = [p for top in SCANNED for p in sorted((ROOT / top).rglob("*.py")) if ".venv" not in p.parts]
    return [p for p in found if p.resolve() != here]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_scanner_reads_every_form():
    sample = (
        "x (architecture.md, invariants 2, 5 and 6; architecture.md, habit 1)\n"
        'architecture.md, "Processes" and contract.md §4-§5, contract.md\n§3, §6; defects.md #3 and #4'
    )
    assert sorted(references(sample), key=str) == sorted(
        [
            (1, "invariant", 2),
            (1, "invariant", 5),
            (1, "invariant", 6),
            (1, "habit", 1),
            (2, "heading", "Processes"),
            (2, "section", 4),
            (2, "section", 5),
            (2, "section", 3),
            (2, "section", 6),
            (3, "defect", 3),
            (3, "defect", 4),
        ],
        key=str,
    )
    assert OLD.search(f"({_S} §5)") and OLD.search(f'{_D} "Backends"') and not OLD.search("contract.md §5")


def test_the_docs_have_every_numbered_heading():
    found = targets()
    assert found["invariant"] == set(range(1, 9))
    assert found["habit"] == set(range(1, 16))
    assert found["section"] == set(range(1, 10))
    assert found["defect"] == set(range(1, 29))


def test_every_reference_resolves_to_a_heading():
    found = targets()
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {kind} {target!r}"
        for path in sources()
        for line, kind, target in references(path.read_text(encoding="utf-8"))
        if target not in found[kind]
    ]
    assert not bad, "references to no heading in docs/:\n" + "\n".join(bad)


def test_no_old_style_reference_is_left():
    left = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OLD.search(line)
    ]
    # A reference broken across a line ("the name" at a line's end, "§5" on the next).
    left += [
        f"{path.relative_to(ROOT)}: {match.group(0)!r}"
        for path in sources()
        for match in OLD.finditer(path.read_text(encoding="utf-8"))
        if "\n" in match.group(0)
    ]
    assert not left, "old-style references (cite docs/ instead):\n" + "\n".join(left)


@pytest.mark.parametrize("name", LINKING)
def test_links_to_the_documents_resolve(name):
    source = ROOT / name
    if not source.is_file():
        pytest.skip(f"no {name}")
    bad = []
    for match in LINK.finditer(source.read_text(encoding="utf-8")):
        target, anchor = match.group(1), match.group(2)
        if "://" in target:
            continue
        path = (source.parent / target).resolve()
        if not path.is_file():
            bad.append(f"{target}: no such file")
        elif anchor and anchor not in {slug(text) for _, text in headings(path)}:
            bad.append(f"{target}#{anchor}: no such heading")
    assert not bad, f"{name}: broken links:\n" + "\n".join(bad)
