"""Objects in an S3 bucket through boto3 (extra `s3`): AWS, MinIO, Aliyun OSS, Tencent COS.

S3-compatible stores reject the CRC checksums recent botocore sends by default, so
checksums are computed only when an operation requires them.  Large files go up in
parts (upload_file with a TransferConfig); links are presigned GETs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dlsupervisor.storage.base import MAX_LINK_SECONDS, StorageError, describe
from dlsupervisor.storage.config import ENV_ACCESS_KEY, ENV_SECRET_KEY, StorageSettings

EXTRA = "s3"
PART_SIZE = 64 * 1024 * 1024


def load_boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise StorageError(f"backend s3 needs boto3: pip install 'dlsupervisor[{EXTRA}]'") from None
    return boto3


def credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """Our two variables when set; otherwise boto3's own chain (environment, files, role)."""
    access, secret = environ.get(ENV_ACCESS_KEY), environ.get(ENV_SECRET_KEY)
    if access and secret:
        return {"aws_access_key_id": access, "aws_secret_access_key": secret}
    return {}


class S3Storage:
    def __init__(self, settings: StorageSettings, *, timeout: float = 10.0, attempts: int = 3) -> None:
        boto3 = load_boto3()
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": settings.addressing_style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": attempts, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=max(timeout, 60.0),
        )
        self.bucket = settings.bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url or None,
            region_name=settings.region or None,
            config=config,
            **credentials(os.environ),
        )
        self.transfer = TransferConfig(
            multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, max_concurrency=4
        )

    def _errors(self) -> tuple[type[BaseException], ...]:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError, Boto3Error, OSError)

    def put(self, path: str, key: str) -> None:
        try:
            self.client.upload_file(path, self.bucket, key, Config=self.transfer)
        except self._errors() as exc:
            raise StorageError(describe(exc)) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except self._errors() as exc:
            raise StorageError(describe(exc)) from None

    def link(self, key: str, expires_in: int) -> str:
        seconds = max(1, min(int(expires_in), MAX_LINK_SECONDS))
        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
            )
        except self._errors() as exc:
            raise StorageError(describe(exc)) from None
