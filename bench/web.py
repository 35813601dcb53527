"""Signed downloads through the web child against nginx serving the same files (bench/README.md).

    python -m bench --only web           # 10 s per case, its own table after the bench's
    python -m bench --only web --quick   # 2 s per case, to check the harness

One dlsupervisor daemon with a `[web]` section on MariaDB + Redis exports a 1 MB and a
10 KB file through the toolkit (download limit 10⁹, so nothing expires); nginx, started
here with its own nginx.conf in the run's directory (sendfile on, 2 workers, its pid
file there), serves the same files from the same storage directory. For each file each
server takes `clients` keep-alive clients (bench/webclient.py: `processes` processes of
threads) for `seconds`: requests/s, p50/p99 latency, CPU per request of the server's and
the clients' processes.  Then `download_times` of each item must equal the 200s its
link got: every download counted once by the web child's conditional UPDATE.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import procs, stats
from bench.systems import job
from bench.systems.dlsv import Dlsv
from bench.world import World, download_rows, insert_items

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SIZES = (1_000_000, 10_000)
LIMIT = 1_000_000_000  # [web] max_downloads: counted, never reached
SECRET = "bench-web-secret"
DONE = 2  # ItemStatus.DONE
GOAL = 0.5  # dlsupervisor's rate for the 1 MB file, as a share of nginx's

NGINX_CONF = """\
{user}worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(port: int, path: str) -> bool:
    """Whether GET `path` is a 200 now."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status == 200
        finally:
            conn.close()
    return False


# -- the two servers ------------------------------------------------------------------------


class WebDaemon(Dlsv):
    name = "dlsupervisor-web"  # its start is not one of the bench's 4-worker starts


def start_daemon(world: World, files: Path) -> tuple[WebDaemon, int]:
    """The daemon with its web child on a free loopback port, answering /healthz."""
    port = free_port()
    web = {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}", "secret": SECRET}
    daemon = WebDaemon(
        world,
        label="web",
        workers=1,
        sections={"storage": {"path": files}, "web": {**web, "max_downloads": LIMIT}},
    )
    daemon.start()
    procs.wait_until(lambda: answers(port, "/healthz"), 30, "the web child answering /healthz")
    return daemon, port


def export_files(world: World, daemon: Dlsv) -> dict[int, dict[str, Any]]:
    """size -> its DONE item's row (url, storage_key), exported by the daemon's worker."""
    made = {}
    for size in SIZES:
        data = job(world, "file", size=size, name=f"bench-{size}.bin")
        (item_id,) = insert_items(daemon.db_url, 1, data)
        daemon.enqueue([item_id], data)
        made[size] = item_id

    def done() -> dict[int, dict[str, Any]] | None:
        rows = download_rows(daemon.db_url, list(made.values()))
        return rows if all(row["status"] == DONE for row in rows.values()) else None

    rows = procs.wait_until(done, 30, "the bench files exported", interval=0.05)
    return {size: rows[item_id] for size, item_id in made.items()}


def start_nginx(world: World, root: Path, probe: str) -> tuple[procs.Launched, int]:
    """nginx on a free loopback port, its conf, pid file and logs under the run's directory."""
    home = world.tmp / "nginx"
    home.mkdir()
    port = free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""  # the run's directory is 0700
    conf = home / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, dir=home, port=port, root=root))
    log = home / "nginx.out"
    with open(log, "ab") as out:
        started = time.time()
        proc = subprocess.Popen(
            [NGINX, "-p", str(home), "-c", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    launched = procs.Launched("nginx", proc, log, started)
    world.on_close(lambda: procs.stop(launched))
    procs.wait_until(lambda: answers(port, probe) or proc.poll() is not None, 15, "nginx answering")
    if proc.poll() is not None:
        raise procs.BenchError(f"nginx exited ({proc.returncode}); see {log}")
    return launched, port


def nginx_version() -> str:
    found = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False)
    return (found.stderr or found.stdout).strip().rpartition("/")[2]


# -- one case -------------------------------------------------------------------------------


def load(world: World, port: int, path: str, size: int, clients: int, processes: int, seconds: float) -> dict:
    """`clients` keep-alive clients on `path` for `seconds`; their reports merged."""
    start = time.time() + 1.0  # every client process imported and connected by then
    launched, outs = [], []
    for index in range(processes):
        threads = clients // processes + (index < clients % processes)
        out = world.tmp / f"webclient-{port}-{size}-{index}.json"
        argv = ["-m", "bench.webclient", "--port", str(port), "--path", path, "--size", str(size)]
        argv += ["--threads", str(threads), "--start", f"{start:.3f}", "--seconds", str(seconds)]
        client = procs.launch("webclient", [*argv, "--out", str(out)], world.tmp / "webclient.log")
        world.on_close(lambda client=client: procs.stop(client))
        launched.append(client)
        outs.append(out)
    for client in launched:
        client.proc.wait(seconds + 60)
    reports = [json.loads(out.read_text()) for out in outs if out.exists()]
    if len(reports) != processes:
        raise procs.BenchError(f"a web client failed; see {world.tmp / 'webclient.log'}")
    latencies = [t for report in reports for t in report["latencies"]]
    statuses: dict[str, int] = {}
    for report in reports:
        for status, count in report["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "rate": len(latencies) / seconds,
        "latency": stats.summary(latencies),
        "statuses": statuses,
        "errors": sum(report["error_count"] for report in reports),
        "error_samples": [e for report in reports for e in report["errors"]][:5],
        "client_cpu": sum(report["cpu"] for report in reports),
    }


def measure(world: World, pids: list[int], port: int, path: str, size: int, options: dict) -> dict:
    """One server, one file: the load's figures and the server's CPU per request."""
    before = stats.cpu_seconds(pids)
    result = load(world, port, path, size, **options)
    served = result["latency"]["n"] or 1
    result["server_cpu_ms"] = (stats.cpu_seconds(pids) - before) * 1000 / served
    result["client_cpu_ms"] = result.pop("client_cpu") * 1000 / served
    result["mb_s"] = result["rate"] * size / 1e6
    return result


def web_child(daemon: Dlsv) -> list[int]:
    assert daemon.launched is not None
    found = [p for p in procs.children(daemon.launched.pid) if procs.title(p).startswith("dlsupervisor: web")]
    if not found:
        raise procs.BenchError("no web child")
    return found


def run(world: World, seconds: float = 10.0, clients: int = 16, processes: int = 4) -> dict[str, Any]:
    """Each file through nginx, then through the web child; then the database's counts."""
    files = world.tmp / "web-files"
    daemon, web_port = start_daemon(world, files)
    items = export_files(world, daemon)
    launched, nginx_port = start_nginx(world, files, "/" + items[SIZES[-1]]["storage_key"])
    nginx_pids = [launched.pid, *procs.children(launched.pid)]
    options = {"clients": clients, "processes": processes, "seconds": seconds}
    results: dict[str, Any] = {"seconds": seconds, "clients": clients, "processes": processes}
    results["nginx_version"] = nginx_version()
    results["waitress_version"] = metadata.version("waitress")
    results["cases"] = cases = {}
    for size, row in items.items():
        print(f"bench.web: {size:,} bytes ...", file=sys.stderr, flush=True)
        url = "/" + row["storage_key"]
        cases[f"nginx {size}"] = measure(world, nginx_pids, nginx_port, url, size, options)
        link = row["url"].removeprefix(f"http://127.0.0.1:{web_port}")
        cases[f"dlsupervisor {size}"] = measure(world, web_child(daemon), web_port, link, size, options)
    counted = download_rows(daemon.db_url, [row["id"] for row in items.values()])
    results["counts"] = {
        str(size): {
            "served": cases[f"dlsupervisor {size}"]["statuses"].get("200", 0),
            "download_times": counted[row["id"]]["download_times"],
            "status": counted[row["id"]]["status"],
        }
        for size, row in items.items()
    }
    daemon.stop()
    procs.stop(launched)
    return results


# -- the table ------------------------------------------------------------------------------


def label(size: int | str) -> str:
    size = int(size)
    return f"{size / 1e6:g} MB" if size >= 1_000_000 else f"{size / 1e3:g} KB"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Web downloads: {results['clients']} keep-alive clients ({results['processes']} processes), "
        f"{results['seconds']:g} s per case; nginx {results['nginx_version']}, "
        f"waitress {results.get('waitress_version', '?')}.",
        "",
        "| file | server | requests/s | MB/s | p50 / p99 ms | server CPU ms/req | client CPU ms/req "
        "| non-200 / errors | vs nginx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cases = results["cases"]
    for name, case in cases.items():
        server, _, size = name.partition(" ")
        base = cases.get(f"nginx {size}")
        ratio = f"{case['rate'] / base['rate']:.2f}×" if base and server != "nginx" and base["rate"] else ""
        if ratio and size == str(SIZES[0]):
            ratio += f" ({'met' if case['rate'] >= GOAL * base['rate'] else '**missed**'}: ≥ {GOAL}×)"
        odd = sum(v for k, v in case["statuses"].items() if k != "200")
        lines.append(
            f"| {label(size)} | {server} | {case['rate']:,.0f} | {case['mb_s']:,.0f} "
            f"| {case['latency']['p50'] * 1000:.2f} / {case['latency']['p99'] * 1000:.2f} "
            f"| {case['server_cpu_ms']:.3f} | {case['client_cpu_ms']:.3f} "
            f"| {odd} / {case['errors']} | {ratio} |"
        )
    lines.append("")
    for size, count in results["counts"].items():
        same = "=" if count["served"] == count["download_times"] else "**≠**"
        lines.append(
            f"- {label(size)} item: {count['served']:,} downloads served (200), "
            f"download_times {same} {count['download_times']:,}, status {count['status']}"
        )
    return "\n".join(lines)
