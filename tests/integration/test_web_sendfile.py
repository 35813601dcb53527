"""The web child's download path on the real server (waitress) in-process: bodies sent with
sendfile through waitress's private flush loop (web/sendfile.py), the recent-read cache
that skips the item's read, and waitress's queue-depth warnings kept to one a minute."""

from __future__ import annotations

import http.client
import logging
import os
import time

from dlsupervisor.model import ItemStatus
from dlsupervisor.web import links, sendfile, server
from tests.integration.test_web_app import SECRET, done_item, get, serving, web_settings

SIZE = 3_000_000  # larger than a loopback socket's first send buffer: several flushes


def link(item_id: int) -> str:
    expiry = int(time.time()) + 600
    return f"/d/{item_id}?e={expiry}&s={links.signature(SECRET, item_id, expiry)}"


def stored(tmp_path, key: str, data: bytes):
    files = tmp_path / "files"
    (files / os.path.dirname(key)).mkdir(parents=True, exist_ok=True)
    (files / key).write_bytes(data)
    return files


def test_waitress_still_has_what_the_sendfile_channel_overrides():
    """Fails loudly when a waitress upgrade moves the private API SendfileChannel relies on
    (pyproject.toml pins the tested range; make_server falls back to copying, with a warning)."""
    assert sendfile.hooks_missing() == []


def test_downloads_go_out_with_sendfile_whole_and_in_ranges_on_one_connection(sqlite_env, tmp_path):
    data = os.urandom(SIZE)
    files = stored(tmp_path, "dl/1/big.bin", data)
    settings = web_settings(tmp_path / "web.ini", sqlite_env.db_url, {"path": files})
    _, item_id = done_item(sqlite_env, "dl/1/big.bin", "大文件 report.bin")
    before = sendfile.SendfileChannel.sendfile_bytes
    wanted = [(None, data), ("bytes=1000000-1999999", data[1_000_000:2_000_000]), ("bytes=-10", data[-10:])]
    with serving(settings) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # keep-alive: one stream
        try:
            for ranged, body in [*wanted, (None, data)]:
                conn.request("GET", link(item_id), headers={"Range": ranged} if ranged else {})
                response = conn.getresponse()
                assert (response.status, response.read()) == (206 if ranged else 200, body)
                assert "filename*=UTF-8''%E5%A4%A7" in response.getheader("Content-Disposition")
        finally:
            conn.close()
    assert sendfile.SendfileChannel.sendfile_bytes - before >= 2 * SIZE + 1_000_010
    assert sqlite_env.db.item(item_id)["download_times"] == 4


def test_a_recent_read_never_serves_an_item_that_expired_or_lost_its_file(env, tmp_path):
    files = stored(tmp_path, "dl/2/r.csv", b"a,b\n")
    settings = web_settings(tmp_path / "web.ini", env.db_url, {"path": files})
    _, item_id = done_item(env, "dl/2/r.csv", "r.csv")
    with serving(settings) as port:
        assert get(port, link(item_id))[::2] == (200, b"a,b\n")  # read, kept for ROW_SECONDS
        env.db.execute("UPDATE download_item SET status = %s WHERE id = %s", (ItemStatus.EXPIRED, item_id))
        assert get(port, link(item_id))[0] == 410
        env.db.execute("UPDATE download_item SET status = %s WHERE id = %s", (ItemStatus.DONE, item_id))
        assert get(port, link(item_id))[0] == 200
        (files / "dl/2/r.csv").unlink()
        assert get(port, link(item_id))[0] == 410
    assert env.db.item(item_id)["download_times"] == 2  # neither refusal was counted


def test_waitress_queue_depth_warnings_are_kept_to_one_a_minute(sqlite_env, tmp_path, caplog):
    settings = web_settings(tmp_path / "web.ini", sqlite_env.db_url)
    queue = logging.getLogger("waitress.queue")
    for installed in [f for f in queue.filters if isinstance(f, server.EveryFilter)]:
        queue.removeFilter(installed)  # an earlier test's server's: this one must add its own
    server.make_server(settings, port=0).close()  # the web child's server quiets them
    with caplog.at_level(logging.WARNING, logger="waitress.queue"):
        for depth in range(50):  # as waitress logs them: one per request that waits
            queue.warning("Task queue depth is %d", depth)
    assert [r.getMessage() for r in caplog.records] == ["Task queue depth is 0"]


def test_a_held_back_warning_is_counted_in_the_next_one(caplog):
    logger = logging.getLogger("dlsupervisor.test.every")
    logger.addFilter(server.EveryFilter(0.2))
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for depth in range(5):
            logger.warning("depth %d", depth)
        deadline = time.monotonic() + 5
        while len(caplog.records) < 2:
            assert time.monotonic() < deadline, "the warning after the interval never came"
            logger.warning("depth %d", 9)
            time.sleep(0.05)
    first, second = (r.getMessage() for r in caplog.records)
    assert first == "depth 0" and second.startswith("depth 9 (") and "more since the last" in second
