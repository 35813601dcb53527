"""A throwaway certificate authority made with openssl, for servers the tests start with TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


def need_openssl() -> None:
    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("openssl not installed")
        pytest.skip("openssl not installed")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Ca:
    """A CA (ca.pem) and what it signed: server certificates and their keys."""

    dir: Path

    @property
    def cert(self) -> str:
        return str(self.dir / "ca.pem")

    def issue(self, name: str, *, cn: str, san: str) -> tuple[str, str]:
        """(certificate, key) for `cn` with subjectAltName `san` (as in "DNS:localhost")."""
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName = {san}\nbasicConstraints = CA:FALSE\n")
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}-key.pem",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={cn}",
            cwd=self.dir,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            ext.name,
            cwd=self.dir,
        )
        return str(self.dir / f"{name}.pem"), str(self.dir / f"{name}-key.pem")


def make_ca(directory: Path, name: str = "test CA") -> Ca:
    need_openssl()
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        cwd=directory,
    )
    return Ca(directory)
