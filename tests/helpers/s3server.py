"""moto's standalone S3 server on 127.0.0.1, an ephemeral port: a real HTTP S3 endpoint for boto3."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer

BUCKET = "exports"
CREDENTIALS = {"DLSUPERVISOR_STORAGE_ACCESS_KEY": "testing", "DLSUPERVISOR_STORAGE_SECRET_KEY": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def keys(self) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=BUCKET)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def storage(self, path, **extra) -> dict:
        """A [storage] section for this server."""
        return {
            "backend": "s3",
            "path": path,
            "bucket": BUCKET,
            "endpoint_url": self.endpoint,
            "region": "us-east-1",
            "addressing_style": "path",
            "prefix": "dl/",
            **extra,
        }


@contextmanager
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()
