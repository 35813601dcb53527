"""Instructions a row for bench.toolkit's CSV/XLSX cases, by valgrind callgrind (bench/README.md).

    python -m bench.instructions csv,csv_toolkit,csv_toolkit_formulas --rows 0,20000
    python -m bench.instructions xlsxwriter,xlsx_toolkit,openpyxl --rows 0,3000

Wall and CPU time on a shared machine move by 2x between runs; instruction counts do
not.  Each case runs under callgrind as `python -m bench.toolkit --case NAME` at two
row counts (fixed hash seed); the difference divided by the rows' difference is what a
row costs, start-up, imports, the workbook's creation and its fixed close cost
cancelling out.  The `rows` case (only making the rows) is subtracted, so the figure is
the writer's alone.  Needs valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.M)


def instructions(case: str, count: int, work: Path) -> int:
    """Instructions executed by the whole child process (`--trace-children=no`: zip_r aside)."""
    out, trace = work / "out", work / f"{case}-{count}.callgrind"
    out.mkdir(exist_ok=True)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={trace}"]
    command += [sys.executable, "-m", "bench.toolkit", "--case", case, "--rows", str(count)]
    command += ["--out", str(out), "--source", str(work)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    match = TOTALS.search(trace.read_text(errors="replace"))
    if match is None:
        raise RuntimeError(f"bench.instructions: no totals in {trace}")
    for path in out.rglob("*"):
        if path.is_file():
            path.unlink()
    return int(match.group(1))


def per_row(case: str, low: int, high: int, work: Path) -> float:
    return (instructions(case, high, work) - instructions(case, low, work)) / (high - low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("cases", help="comma-separated bench.toolkit cases, e.g. csv,csv_toolkit")
    parser.add_argument("--rows", default="0,20000", help="the two row counts, LOW,HIGH")
    args = parser.parse_args(argv)
    low, high = (int(n) for n in args.rows.split(","))
    with tempfile.TemporaryDirectory(prefix="dlsv-bench-instr-") as tmp:
        work = Path(tmp)
        making = per_row("rows", low, high, work)
        print(f"rows (making them, subtracted below): {making:,.0f} instructions a row")
        figures = {}
        for case in args.cases.split(","):
            figures[case] = per_row(case, low, high, work) - making
            print(f"{case}: {figures[case]:,.0f} instructions a row", flush=True)
    first = next(iter(figures))
    for case, value in figures.items():
        print(f"{case}: {value / figures[first]:.2f}x {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
