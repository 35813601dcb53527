"""contract.md §7, storage s3: boto3 against a real S3-compatible HTTP server (moto's) on localhost."""

from __future__ import annotations

import hashlib
import urllib.request
from urllib.parse import urlsplit

import pytest

from dlsupervisor.model import ItemStatus
from dlsupervisor.storage.base import StorageError
from dlsupervisor.storage.config import build
from dlsupervisor.storage.s3 import S3Storage
from tests.helpers.env import TOOLKIT_SUBTYPES
from tests.helpers.s3server import CREDENTIALS, s3_server


@pytest.fixture
def s3(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with s3_server() as server:
        yield server


def configure(env, s3, **extra):
    env.write_config(subtypes=TOOLKIT_SUBTYPES, storage=s3.storage(env.tmp / "files", **extra))


def run_one(env, data, loops):
    scheduler, worker = loops
    worker.register()
    task_id, (item_id,) = env.new_task(data, sub_type=25)
    scheduler.tick()
    assert worker.run_once(timeout=2), "no work was delivered to the worker"
    return env.db.item(item_id)


def test_an_export_is_uploaded_and_its_presigned_url_downloads_it(sqlite_env, s3):
    configure(sqlite_env, s3)
    loops = sqlite_env.scheduler(), sqlite_env.worker("toolkit")
    item = run_one(sqlite_env, {"name": "联系人.csv", "columns": ["a"], "rows": [["李雷"]]}, loops)
    assert item["status"] == ItemStatus.DONE, item["remark"]
    key = f"dl/7/{item['task_id']}/{item['id']}/联系人.csv"
    assert s3.keys() == [key]
    parts = urlsplit(item["url"])
    assert parts.netloc == f"127.0.0.1:{s3.port}" and "X-Amz-Signature=" in parts.query
    assert "X-Amz-Expires=" in parts.query
    with urllib.request.urlopen(item["url"], timeout=10) as response:
        body = response.read()
    assert body.startswith(b"\xef\xbb\xbf") and "李雷".encode() in body
    assert hashlib.md5(body).hexdigest() == item["md5_value"]
    assert [p for p in (sqlite_env.tmp / "files").rglob("*") if p.is_file()] == []


def test_the_link_lives_until_the_items_expire_time_at_most_seven_days(s3, tmp_path):
    storage = S3Storage(build(s3.storage(tmp_path))[0])
    assert "X-Amz-Expires=604800" in storage.link("k", 30 * 24 * 3600)
    assert "X-Amz-Expires=3600" in storage.link("k", 3600)


def test_a_large_file_goes_up_in_parts(s3, tmp_path, monkeypatch):
    from dlsupervisor.storage import s3 as s3_module

    monkeypatch.setattr(s3_module, "PART_SIZE", 5 * 1024 * 1024)  # S3's smallest part
    storage = s3_module.S3Storage(build(s3.storage(tmp_path))[0])
    calls = []
    original = storage.client.create_multipart_upload
    storage.client.create_multipart_upload = lambda **kw: calls.append(kw) or original(**kw)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\1" * (11 * 1024 * 1024))
    storage.put(str(big), "big.bin")
    assert len(calls) == 1
    head = s3.client().head_object(Bucket="exports", Key="big.bin")
    assert head["ContentLength"] == 11 * 1024 * 1024 and head["ETag"].endswith('-3"')


def test_virtual_addressing_is_configurable(s3, tmp_path):
    endpoint = f"http://localhost:{s3.port}"  # botocore never puts a bucket before an IP address
    storage = S3Storage(build(s3.storage(tmp_path, addressing_style="virtual", endpoint_url=endpoint))[0])
    url = storage.link("a/b.csv", 60)
    assert urlsplit(url).netloc == f"exports.localhost:{s3.port}"  # as Aliyun OSS and Tencent COS want
    path = S3Storage(build(s3.storage(tmp_path, addressing_style="path", endpoint_url=endpoint))[0])
    assert urlsplit(path.link("a/b.csv", 60)).path == "/exports/a/b.csv"


def test_a_storage_outage_fails_the_item_as_storage_and_the_worker_survives(sqlite_env, s3):
    configure(sqlite_env, s3)
    loops = sqlite_env.scheduler(), sqlite_env.worker("toolkit")
    s3.stop()
    item = run_one(sqlite_env, {"do": "file", "name": "a.csv", "body": "1"}, loops)
    assert item["status"] == ItemStatus.FAILED
    assert item["remark"].startswith("export failed: storage: "), item["remark"]
    assert [p for p in (sqlite_env.tmp / "files").rglob("*") if p.is_file()] == []
    s3.start()
    s3.client().create_bucket(Bucket="exports")
    item = run_one(sqlite_env, {"do": "file", "name": "a.csv", "body": "1"}, loops)
    assert item["status"] == ItemStatus.DONE, item["remark"]


def test_storage_errors_are_storage_errors(s3, tmp_path):
    storage = S3Storage(build(s3.storage(tmp_path, bucket="no-such-bucket"))[0])
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(StorageError, match="NoSuchBucket"):
        storage.put(str(tmp_path / "f"), "k")


def test_uploads_send_no_checksum_s3_compatible_stores_reject(s3, tmp_path):
    """Recent botocore adds CRC32 checksums (and aws-chunked bodies) to every upload by default;
    MinIO releases, Aliyun OSS and Tencent COS refuse them: only when required."""
    storage = S3Storage(build(s3.storage(tmp_path))[0])
    sent = []
    storage.client.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(request))
    (tmp_path / "f").write_bytes(b"x" * 1000)
    storage.put(str(tmp_path / "f"), "k")
    headers = {k.lower() for k in sent[0].headers}
    assert not any(h.startswith("x-amz-checksum") or h == "x-amz-sdk-checksum-algorithm" for h in headers)
