"""The web benchmark's load generator: `threads` keep-alive HTTP/1.1 clients in this process.

    python -m bench.webclient --port P --path /d/1?e=..&s=.. --size BYTES --threads 4 \
        --start EPOCH --seconds S --out FILE

Each thread connects before `start`, then sends GET after GET on its connection until
`start + seconds`, reading each body into one reused buffer (so the client allocates
nothing per response) and checking its length.  FILE gets JSON: the latencies (seconds)
of the 200s that ended inside the window, the count of every status (in the window or
just after it: the database check needs them all), errors, and this process's CPU time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import sys
import threading
import time
from collections import Counter
from typing import Any


class Hammer:
    def __init__(self, port: int, path: str, size: int, start: float, seconds: float) -> None:
        self.port, self.path, self.size = port, path, size
        self.start, self.end = start, start + seconds
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []

    def connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.connect()
        return conn

    def run(self) -> None:
        conn = self.connect()
        view = memoryview(bytearray(self.size + 1))
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        time.sleep(max(0.0, self.start - time.time()))
        while time.time() < self.end:
            began = time.perf_counter()
            try:
                status, length, closing = self.fetch(conn, view)
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = self.connect()
                continue
            took = time.perf_counter() - began
            statuses[status] += 1
            if status == 200 and length != self.size:
                self.errors.append(f"short body: {length} of {self.size} bytes")
            elif status == 200 and time.time() <= self.end:
                latencies.append(took)
            if closing:
                conn.close()
                conn = self.connect()
        conn.close()
        with self.lock:
            self.latencies += latencies
            self.statuses.update(statuses)

    def fetch(self, conn: http.client.HTTPConnection, view: memoryview) -> tuple[int, int, bool]:
        """One GET: (status, body bytes read, whether the server closes the connection)."""
        conn.request("GET", self.path)
        response = conn.getresponse()
        length = 0
        while got := response.readinto(view[length:]):
            length += got
        return response.status, length, response.will_close


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webclient", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    hammer = Hammer(args.port, args.path, args.size, args.start, args.seconds)
    threads = [threading.Thread(target=hammer.run) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report: dict[str, Any] = {
        "latencies": hammer.latencies,
        "statuses": {str(k): v for k, v in hammer.statuses.items()},
        "errors": hammer.errors[:20],
        "error_count": len(hammer.errors),
        "cpu": usage.ru_utime + usage.ru_stime,
    }
    with open(args.out, "w") as handle:
        json.dump(report, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
