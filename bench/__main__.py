"""`python -m bench`: every measurement in one run, then the table (Markdown) on stdout.

    python -m bench                      # everything, under 10 minutes on 2 cores
    python -m bench --only latency,crash # some of them
    python -m bench --only web           # downloads through the web child against nginx
    python -m bench --quick              # small counts, to check the harness itself

Progress goes to stderr; the results also go to --json FILE.  Every process,
database and Redis key the run created is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from bench import crash, fairness, idle, latency, report, scale, throughput, timeouts, toolkit, web
from bench.world import World

# --quick's counts: the least that still runs every code path of each measurement (it checks
# the harness, not the systems; tests/process/test_bench_quick.py runs it in a fresh venv).
MEASUREMENTS = {
    "throughput": (throughput.run, {"items": 40, "burst": 40, "stream_s": 0.2}),
    "latency": (latency.run, {"samples": 3}),
    "timeouts": (timeouts.run, {"samples": 1}),
    "crash": (crash.run, {"samples": 1}),
    "scale": (scale.run, {"history": 2_000}),
    "idle": (idle.run, {"seconds": 1}),
    "toolkit": (toolkit.run, {"rows": 2_000, "zip_mb": 10, "repeat": {}}),  # its own table (bench/toolkit.py)
    "web": (web.run, {"seconds": 1}),  # its own table (bench/web.py)
    "fairness": (fairness.run, {"heavy": 30, "items": 40, "repeats": 1, "backlogs": (300,)}),
}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    names = args.only.split(",") if args.only else list(MEASUREMENTS)
    unknown = [n for n in names if n not in MEASUREMENTS]
    if unknown:
        print(
            f"unknown measurement(s): {', '.join(unknown)}; known: {', '.join(MEASUREMENTS)}", file=sys.stderr
        )
        return 2
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # run the cleanup
    world = World()
    results: dict[str, Any] = {
        "machine": report.machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load": {},
    }
    began = time.monotonic()
    try:
        for name in names:
            run, quick = MEASUREMENTS[name]
            step = time.monotonic()
            results["load"][name] = os.getloadavg()[0]
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            results[name] = run(world, **(quick if args.quick else {}))
            print(f"bench: {name} took {time.monotonic() - step:.0f}s", file=sys.stderr, flush=True)
        results["startups"] = world.startups
    finally:
        world.close(keep_files=args.keep)
        if args.keep:
            print(f"bench: logs and configuration kept in {world.tmp}", file=sys.stderr)
    results["seconds"] = round(time.monotonic() - began, 1)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1, default=str)
    print(report.markdown(results))
    if "toolkit" in results:
        print("\n" + toolkit.markdown(results["toolkit"]))
    if "web" in results:
        print("\n" + web.markdown(results["web"]))
    if "fairness" in results:
        print("\n" + fairness.markdown(results["fairness"]))
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(MEASUREMENTS)}")
    parser.add_argument(
        "--quick", action="store_true", help="small counts: checks the harness, not the system"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the run's logs and INI files")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
