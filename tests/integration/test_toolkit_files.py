"""contract.md §7: the toolkit's files, read back with the readers users have (csv, openpyxl,
zipfile), on local storage, driven through a handler inside an export scope."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import enum
import hashlib
import io
import itertools
import zipfile
from pathlib import Path

import openpyxl
import pytest

from dlsupervisor import DownloadTaskBase, SubTypeInfo
from dlsupervisor.model import DownloadItem
from dlsupervisor.storage.config import build
from dlsupervisor.toolkit import session
from dlsupervisor.toolkit.cells import TRIGGERS
from dlsupervisor.toolkit.csvout import BATCH
from dlsupervisor.toolkit.names import sanitise

INFO = SubTypeInfo(task_name="T", type=1, sub_type=1, queue_key="t")
ITEM = DownloadItem(id=3, task_id=2, org_id=1)


def handler(root: Path, **storage) -> DownloadTaskBase:
    task = DownloadTaskBase(INFO)
    session.attach(task, build({"path": str(root), **storage})[0], 3600, None)
    return task


def export(task: DownloadTaskBase, body) -> tuple[str, str, str]:
    """Run `body(task)` as the worker runs an export: committed only if it returns."""
    with session.exporting(task, ITEM) as toolkit:
        result = body(task)
        toolkit.commit()
    return result


def stored(root: Path, result) -> Path:
    url, md5, name = result
    path = Path(url.removeprefix("file://"))
    assert path == root / "1" / "2" / "3" / name
    assert hashlib.md5(path.read_bytes()).hexdigest() == md5
    return path


def write(name: str, rows, **options):
    def body(task):
        with task.open_output(name, **options) as out:
            for row in rows:
                out.write_row(row)
        return out.result

    return body


def test_csv_has_a_bom_rfc4180_quoting_and_neutralised_formulas(tmp_path):
    rows = [["李雷", 'say "hi", then\nleave', 3], ['=HYPERLINK("x")', "+1", "-2"], ["@SUM(A1)", "\tx", 1.5]]
    path = stored(tmp_path, export(handler(tmp_path), write("c.csv", rows, columns=["name", "note", "n"])))
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert b'"say ""hi"", then\nleave"' in raw and b"\r\n" in raw
    back = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert back[0] == ["name", "note", "n"]
    assert back[1] == ["李雷", 'say "hi", then\nleave', "3"]
    assert back[2] == ['\'=HYPERLINK("x")', "'+1", "'-2"]
    assert back[3] == ["'@SUM(A1)", "'\tx", "1.5"]


def test_csv_neutralises_formulas_in_text_of_str_subclasses_too(tmp_path):
    """An enum's value or numpy's str_ is text as much as a str (OWASP: every text cell)."""

    class Code(str, enum.Enum):
        FORMULA = "=cmd|' /C calc'!A0"

    rows = [[Code.FORMULA, 1], [type("Text", (str,), {})("+1"), "plain"]]
    raw = stored(tmp_path, export(handler(tmp_path), write("c.csv", rows, bom=False))).read_bytes()
    back = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    assert [row[0][:1] for row in back] == ["'", "'"], back


def test_csv_without_bom_and_with_formulas_allowed(tmp_path):
    body = write("c.csv", [["=1+1"]], bom=False, formulas=True)
    raw = stored(tmp_path, export(handler(tmp_path), body)).read_bytes()
    assert raw == b"=1+1\r\n"


def test_xlsx_cells_are_typed_and_formula_like_text_is_a_string(tmp_path):
    when = dt.datetime(2026, 11, 1, 8, 30)
    rows = [
        ["李雷", 42, 1.5, decimal.Decimal("2.25"), True, dt.date(2026, 11, 2), when, None],
        ["=1+1", "+1", "-1", "@A1", "007", "", 0, False],
    ]
    path = stored(tmp_path, export(handler(tmp_path), write("x.xlsx", rows, columns=list("abcdefgh"))))
    sheet = openpyxl.load_workbook(path).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0] == list("abcdefgh")
    assert values[1] == ["李雷", 42, 1.5, 2.25, True, dt.datetime(2026, 11, 2), when, None]
    assert values[2][:5] == ["=1+1", "+1", "-1", "@A1", "007"]
    assert sheet["A3"].data_type == "s"  # a string cell: never evaluated
    assert sheet["B2"].data_type == "n" and sheet["F2"].is_date


def test_xlsx_formulas_true_writes_formulas(tmp_path):
    path = stored(tmp_path, export(handler(tmp_path), write("x.xlsx", [["=1+1"]], formulas=True)))
    assert openpyxl.load_workbook(path).active["A1"].data_type == "f"


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_rollover_into_parts_each_with_its_header_bundled_in_one_zip(tmp_path, suffix):
    rows = [[i, f"r{i}"] for i in range(7)]
    result = export(handler(tmp_path), write(f"big{suffix}", rows, columns=["n", "s"], max_rows=3))
    assert result[2] == "big.zip"
    with zipfile.ZipFile(stored(tmp_path, result)) as archive:
        names = archive.namelist()
        assert names == [f"big{suffix}", f"big-2{suffix}", f"big-3{suffix}"]
        parts = []
        for name in names:
            if suffix == ".csv":
                text = archive.read(name).decode("utf-8-sig")
                parts.append(list(csv.reader(io.StringIO(text))))
            else:
                book = openpyxl.load_workbook(io.BytesIO(archive.read(name)))
                parts.append([[str(v) for v in r] for r in book.active.iter_rows(values_only=True)])
    assert [len(p) for p in parts] == [4, 4, 2]
    assert all(p[0] == ["n", "s"] for p in parts)
    assert [row[1] for p in parts for row in p[1:]] == [f"r{i}" for i in range(7)]


def test_store_zip_of_paths_bytes_and_iterables(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"x" * 100_000)

    def body(task):
        chunks = (bytes([i]) * 1000 for i in range(50))
        return task.store_zip("bundle", [("a.bin", str(source)), ("b.csv", b"1,2\r\n"), ("c.mp3", chunks)])

    result = export(handler(tmp_path / "files"), body)
    assert result[2] == "bundle.zip"
    with zipfile.ZipFile(stored(tmp_path / "files", result)) as archive:
        assert archive.testzip() is None
        assert archive.read("a.bin") == b"x" * 100_000
        assert archive.read("b.csv") == b"1,2\r\n"
        assert archive.read("c.mp3") == b"".join(bytes([i]) * 1000 for i in range(50))
        assert archive.getinfo("c.mp3").compress_type == zipfile.ZIP_STORED


def test_store_zip_writes_zip64_when_needed(tmp_path):
    def body(task):
        return task.store_zip("many.zip", ((f"f{i}.txt", b"") for i in range(65_536)))

    path = stored(tmp_path, export(handler(tmp_path), body))
    raw = path.read_bytes()
    assert b"PK\x06\x06" in raw[-200:]  # the ZIP64 end of central directory record
    with zipfile.ZipFile(path) as archive:
        assert len(archive.infolist()) == 65_536


def test_store_zip_force_zip64(tmp_path):
    path = stored(
        tmp_path, export(handler(tmp_path), lambda t: t.store_zip("z.zip", [("a", b"1")], force_zip64=True))
    )
    with zipfile.ZipFile(path) as archive:
        assert archive.read("a") == b"1"
    assert b"\x01\x00\x10\x00" in path.read_bytes()[:60]  # the local header's ZIP64 extra field


def test_store_file_from_bytes_and_from_a_path(tmp_path):
    made = tmp_path / "call-42.mp3"
    made.write_bytes(b"ID3" + b"\0" * 10)
    task = handler(tmp_path / "files")
    assert (
        stored(tmp_path / "files", export(task, lambda t: t.store_file(b"hello", "a.txt"))).read_bytes()
        == b"hello"
    )
    path = stored(tmp_path / "files", export(task, lambda t: t.store_file(str(made), "call-42.mp3")))
    assert path.read_bytes() == made.read_bytes() and made.exists()


def test_base_url_links(tmp_path):
    result = export(
        handler(tmp_path, base_url="https://files.example.com/dl/"), lambda t: t.store_file(b"x", "李 a.txt")
    )
    assert result[0] == "https://files.example.com/dl/1/2/3/%E6%9D%8E%20a.txt"


def test_a_hook_that_raises_mid_file_leaves_no_file(tmp_path):
    task = handler(tmp_path)

    def body(task):
        with task.open_output("half.xlsx", columns=["a"]) as out:
            out.write_row(["x"])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        export(task, body)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_hook_that_raises_after_storing_leaves_no_file(tmp_path):
    def body(task):
        task.store_file(b"made", "a.txt")
        raise RuntimeError("later")

    with pytest.raises(RuntimeError):
        export(handler(tmp_path), body)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_unknown_suffix_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        export(handler(tmp_path), write("x.pdf", []))


@pytest.mark.parametrize(
    "given, expected",
    [
        ("../../etc/passwd", "etc_passwd"),
        ("..\\..\\x.csv", "x.csv"),
        (".hidden.csv", "hidden.csv"),
        ("a\x00b\nc.csv", "a_b_c.csv"),
        ("联系人 2026.xlsx", "联系人 2026.xlsx"),
        ("..", "export"),
    ],
)
def test_names_are_sanitised(given, expected):
    assert sanitise(given) == expected


def test_long_names_keep_their_suffix():
    name = sanitise("名" * 300 + ".xlsx")
    assert len(name) == 200 and name.endswith(".xlsx")


def test_a_name_with_dot_dot_stays_inside_the_item_directory(tmp_path):
    result = export(handler(tmp_path / "files"), lambda t: t.store_file(b"x", "../../../escape.csv"))
    path = stored(tmp_path / "files", result)
    assert result[2] == path.name == "escape.csv"
    assert not (tmp_path / "escape.csv").exists()


def test_csv_formula_check_pre_filter_holds_for_every_trigger():
    assert max(TRIGGERS) < "A"  # CsvPart._checked skips text >= "A" before its exact test


def cell_by_cell(rows, columns) -> bytes:
    """The rule the CSV writer must follow, applied to every cell of every row: text (str or a
    subclass) starting with a trigger gets a leading `'`; the header is written as it is."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["'" + v if isinstance(v, str) and v[:1] in TRIGGERS else v for v in row])
    return buffer.getvalue().encode()


def test_csv_formula_check_in_batches_is_the_cell_by_cell_rule(tmp_path):
    """The check looks for marks in a batch's bytes and checks only the rows with one.  Every
    trigger, bare or in a quoted field, as str or a subclass, in the first, a middle or the last
    column, alone in a batch at its first, a middle or its last row; a batch with several marks
    (two in a row, then one at the next line's start; some after a quoted cell); a batch with
    a mark a row (negative numbers, looked at and left alone); look-alikes; a short last batch."""
    text_class = type("Text", (str,), {})
    clean = [1, "ok", 2.5, dt.date(2026, 11, 2), "李雷", None]
    triggers = sorted(TRIGGERS)
    forms = [f"{t}1" for t in triggers] + [f'{t}SUM(A1),"x"' for t in triggers]
    forms += [f"{t}\nnext" for t in triggers] + [text_class(f"{t}2") for t in triggers]
    rows = []
    for number, (form, column) in enumerate(itertools.product(forms, (0, 2, len(clean) - 1))):
        probe = list(clean)
        probe[column] = form
        batch = [clean] * BATCH
        batch[(0, BATCH // 2, BATCH - 1)[number % 3]] = probe
        rows += batch
    several = [clean] * BATCH
    several[:4] = [["=a", -1], ["-1", "=b", 3], ["+c", "x"], [-2, "ok"]]
    several[4] = ['a,"b"', "ok"]  # quotes before the marks below (dropped when marking)
    several[100], several[101], several[BATCH - 1] = ["@z", "y"], ["x", "y", "-z"], [-3, "\tw"]
    negative = [[-i, "ok", -2.5, decimal.Decimal("-2"), "x" if i % 50 else "-5", -0.0] for i in range(BATCH)]
    alike = [clean] * BATCH
    alike[:2] = ["a-b", "x,=y", '"=x"', "", -0.0, "- 1"], ['"', "a\r\nb", "=", 3, "李-雷", "+"]
    rows += several + negative + alike + [["+tail", -1], [3, "ok"]]
    columns = ["=header", "b", "c", "d", "e", "f"]
    body = write("c.csv", rows, columns=columns, bom=False)
    assert stored(tmp_path, export(handler(tmp_path), body)).read_bytes() == cell_by_cell(rows, columns)


def test_csv_rows_are_checked_as_they_were_when_written(tmp_path):
    """The check of a batch comes after its rows were passed: a list the export reuses for
    every row, and a generator, are checked as they were when written."""
    rows = [[f"-{i}", i] if i % 2 else [f"n{i}", -i] for i in range(BATCH + 3)]

    def body(task):
        with task.open_output("c.csv", columns=["a", "b"], bom=False) as out:
            reused = [None, None]
            for row in rows:
                reused[:] = row
                out.write_row(reused)
            out.write_row(value for value in ["=gen", -1])
        return out.result

    raw = stored(tmp_path, export(handler(tmp_path), body)).read_bytes()
    assert raw == cell_by_cell([*rows, ["=gen", -1]], ["a", "b"])
