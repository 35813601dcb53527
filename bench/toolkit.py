"""The export toolkit against the libraries it competes with, in one run (bench/README.md).

    python -m bench.toolkit                     # 1,000,000 rows x 10 columns, ~2 GB zipped
    python -m bench.toolkit --rows 200000 --zip-mb 2048
    python -m bench --only toolkit              # the same, inside the bench's table

Each case runs in a fresh child process (`--case NAME`), so its peak RSS (wait4's
ru_maxrss) is its own: CSV through the toolkit vs the bare csv module; XLSX through the
toolkit vs XlsxWriter constant_memory directly, openpyxl write-only and pandas to_excel;
store_zip of files on disk vs `zip -r`.  Rows cycle over 1,000 prepared ones, so making
them costs every case the same (nearly nothing).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COLUMNS = [f"c{i}" for i in range(10)]
CASES = (
    "csv",
    "csv_toolkit",
    "csv_toolkit_formulas",
    "xlsxwriter",
    "xlsx_toolkit",
    "openpyxl",
    "pandas",
    "zip_r",
    "zip_toolkit",
)
PRELOAD = {
    "csv_toolkit": ("dlsupervisor.toolkit.session", "dlsupervisor.task"),
    "xlsx_toolkit": ("dlsupervisor.toolkit.session", "dlsupervisor.task", "xlsxwriter"),
    "zip_toolkit": ("dlsupervisor.toolkit.session", "dlsupervisor.task"),
    "csv_toolkit_formulas": ("dlsupervisor.toolkit.session", "dlsupervisor.task"),
    "xlsxwriter": ("xlsxwriter",),
    "openpyxl": ("openpyxl",),
    "pandas": ("pandas",),
}
REPEAT = {
    "csv": 3,
    "csv_toolkit": 3,
    "csv_toolkit_formulas": 3,
}  # seconds each: the best of three, against a shared machine's noise
GOALS = {
    "xlsx_toolkit": "≤ 1.2× XlsxWriter's time, ≥ 2× openpyxl's speed",
    "csv_toolkit": "≤ 1.3× csv's time",
}


def sample_rows() -> list[list[Any]]:
    day = dt.date(2026, 11, 1)
    return [
        [
            i,
            f"name-{i}",
            i * 1.25,
            day + dt.timedelta(days=i % 30),
            f"李雷{i}",
            i % 7,
            f"555-{i:04d}",
            0.5,
            "ok",
            i,
        ]
        for i in range(1000)
    ]


def rows(count: int):
    prepared = sample_rows()
    return (prepared[i % 1000] for i in range(count))


# -- the cases, each run in its own process -------------------------------------------------


def case_rows(out: Path, count: int, _: Path) -> None:
    """Only making the rows: what bench.instructions subtracts from every case (not in CASES)."""
    for _row in rows(count):
        pass


def case_csv(out: Path, count: int, _: Path) -> None:
    with open(out / "plain.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows(count):
            writer.writerow(row)


def toolkit_export(out: Path, body) -> None:
    from dlsupervisor.model import DownloadItem
    from dlsupervisor.storage.config import build
    from dlsupervisor.task import DownloadTaskBase, SubTypeInfo
    from dlsupervisor.toolkit import session

    task = DownloadTaskBase(SubTypeInfo("Bench", 1, 1, "bench"))
    session.attach(task, build({"path": str(out / "files")})[0], 3600, None)
    with session.exporting(task, DownloadItem(id=1, task_id=1, org_id=1)) as toolkit:
        body(task)
        toolkit.commit()


def case_csv_toolkit(out: Path, count: int, _: Path) -> None:
    def body(task):
        with task.open_output("toolkit.csv", columns=COLUMNS) as output:
            for row in rows(count):
                output.write_row(row)

    toolkit_export(out, body)


def case_csv_toolkit_formulas(out: Path, count: int, _: Path) -> None:
    """formulas=True: no per-cell formula check, to show what that check costs."""

    def body(task):
        with task.open_output("toolkit.csv", columns=COLUMNS, formulas=True) as output:
            for row in rows(count):
                output.write_row(row)

    toolkit_export(out, body)


def case_xlsx_toolkit(out: Path, count: int, _: Path) -> None:
    def body(task):
        with task.open_output("toolkit.xlsx", columns=COLUMNS) as output:
            for row in rows(count):
                output.write_row(row)

    toolkit_export(out, body)


def case_xlsxwriter(out: Path, count: int, _: Path) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(out / "direct.xlsx"), {"constant_memory": True})
    sheet = book.add_worksheet()
    date_format = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, COLUMNS)
    write_row, write_datetime = sheet.write_row, sheet.write_datetime
    for number, row in enumerate(rows(count), 1):
        write_row(number, 0, row)  # write() has no date format: the date cell gets one
        write_datetime(number, 3, row[3], date_format)
    book.close()


def case_openpyxl(out: Path, count: int, _: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(COLUMNS)
    for row in rows(count):
        sheet.append(row)
    book.save(out / "openpyxl.xlsx")


def case_pandas(out: Path, count: int, _: Path) -> None:
    import pandas

    frame = pandas.DataFrame(list(rows(count)), columns=COLUMNS)
    frame.to_excel(out / "pandas.xlsx", index=False)


def case_zip_r(out: Path, count: int, source: Path) -> None:
    subprocess.run(["zip", "-q", "-r", str(out / "zip-r.zip"), "."], cwd=source, check=True)


def case_zip_toolkit(out: Path, count: int, source: Path) -> None:
    files = sorted(p for p in source.rglob("*") if p.is_file())
    toolkit_export(out, lambda task: task.store_zip("toolkit.zip", [(p.name, str(p)) for p in files]))


# -- the harness ----------------------------------------------------------------------------


def make_source(directory: Path, megabytes: int) -> int:
    """`megabytes` of CSV-like text in 100 MB files (what exports zip), written once."""
    directory.mkdir(parents=True, exist_ok=True)
    line = ",".join(str(v) for v in sample_rows()[7]) + "\n"
    block = "".join(line.replace("7", str(i % 10)) for i in range(50_000)).encode()
    total, index = 0, 0
    while total < megabytes * 1_000_000:
        with open(directory / f"calls-{index:03d}.csv", "wb") as handle:
            for _ in range(max(1, 100_000_000 // len(block))):
                handle.write(block)
                total += len(block)
        index += 1
    return total


def cpu_seconds() -> float:
    """This process's CPU time and its waited-for children's (zip -r): contention on a shared
    machine stretches wall time, much less CPU time, so ratios use CPU time."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_case(name: str, out: Path, count: int, source: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.toolkit", "--case", name, "--rows", str(count)]
    command += ["--out", str(out), "--source", str(source)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    reported = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    timing = json.loads(reported or b'{"seconds": 0, "cpu": 0}')
    produced = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    return {
        "seconds": round(timing["seconds"], 4),  # --quick's cases take milliseconds
        "cpu": round(timing["cpu"], 4),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "bytes": produced,
        "ok": os.waitstatus_to_exitcode(status) == 0,
    }


def run(
    world: Any = None,
    rows: int = 1_000_000,
    zip_mb: int = 2048,
    cases: tuple[str, ...] = CASES,
    repeat: dict[str, int] = REPEAT,
) -> dict:
    """Every case in turn, each `repeat[case]` times (the best kept); `world` is unused (no database)."""
    results: dict[str, Any] = {"rows": rows, "zip_mb": zip_mb, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="dlsv-bench-toolkit-") as tmp:
        out, source = Path(tmp) / "out", Path(tmp) / "source"
        out.mkdir()
        if any(c.startswith("zip") for c in cases):
            results["zip_bytes"] = make_source(source, zip_mb)
        for name in cases:
            if name == "pandas" and not _importable("pandas"):
                continue
            print(f"bench.toolkit: {name} ...", file=sys.stderr, flush=True)
            runs = [run_case(name, out, rows, source) for _ in range(repeat.get(name, 1))]
            if not all(r["ok"] for r in runs):  # not a 0 s case (a ZeroDivisionError in markdown)
                raise RuntimeError(f"bench.toolkit: the {name} case failed (its error is above)")
            results["cases"][name] = min(runs, key=lambda r: r["cpu"])
    return results


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def markdown(results: dict[str, Any]) -> str:
    cases, count = results["cases"], results["rows"]
    lines = [
        "| case | wall s | CPU s | rows/s (CPU; MB/s for zips) | peak RSS MB | CPU time vs |",
        "|---|---|---|---|---|---|",
    ]
    baselines = {
        "csv_toolkit": "csv",
        "csv_toolkit_formulas": "csv",
        "xlsx_toolkit": "xlsxwriter",
        "openpyxl": "xlsxwriter",
        "pandas": "xlsxwriter",
        "zip_toolkit": "zip_r",
    }
    for name, case in cases.items():
        cpu = case["cpu"] or case["seconds"]
        base = cases.get(baselines.get(name, ""))
        base_cpu = (base["cpu"] or base["seconds"]) if base else 0.0
        if not cpu:  # too short for the clocks (--quick's tiny cases)
            speed = "n/a"
        elif name.startswith("zip"):
            speed = f"{results['zip_bytes'] / 1e6 / cpu:.0f} MB/s"
        else:
            speed = f"{count / cpu:,.0f}"
        ratio = f"{cpu / base_cpu:.2f}× {baselines[name]}" if base_cpu else ""
        lines.append(
            f"| {name} | {case['seconds']:.2f} | {cpu:.2f} | {speed} | {case['peak_rss_mb']:.0f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.toolkit", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--zip-mb", type=int, default=2048)
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(CASES)}")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if args.case:  # a child: import first, then time the work alone
        for module in PRELOAD.get(args.case, ()):
            __import__(module)
        started, cpu = time.perf_counter(), cpu_seconds()
        globals()[f"case_{args.case}"](Path(args.out), args.rows, Path(args.source))
        print(json.dumps({"seconds": time.perf_counter() - started, "cpu": cpu_seconds() - cpu}))
        return 0
    cases = tuple(args.only.split(",")) if args.only else CASES
    results = run(rows=args.rows, zip_mb=args.zip_mb, cases=cases)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
