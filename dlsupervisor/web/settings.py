"""The [web] section (contract.md §8): its keys, defaults and checks, kept out of config.py."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dlsupervisor.values import boolean

ENV_SECRET = "DLSUPERVISOR_WEB_SECRET"
DEFAULT_LISTEN = "127.0.0.1:8480"


@dataclass(frozen=True, repr=False)
class WebSettings:
    listen: str = DEFAULT_LISTEN
    public_url: str = ""  # set: download_item.url is a signed link under it
    secret: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    max_downloads: int = 0  # 0: no limit; [subtype:] max_downloads overrides
    one_cpu: bool = True  # the web child's threads kept on one CPU (server.py: why)

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    def __repr__(self) -> str:
        """Never the secret or the token: reprs reach logs and tracebacks."""
        return f"WebSettings(listen={self.listen!r}, public_url={self.public_url!r})"


def split_listen(text: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:port`) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536 or not host:
        raise ValueError("must be host:port, as in 127.0.0.1:8480 (port 0: any free port)")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(text: str) -> str:
    split_listen(text)
    return text


def _url(text: str) -> str:
    if text and not text.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// url")
    return text.rstrip("/")


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be a whole number >= 0")
    return value


def _text(text: str) -> str:
    return text


WEB_KEYS: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {
        "listen": _listen,
        "public_url": _url,
        "secret": _text,
        "token": _text,
        "max_downloads": _nonneg_int,
        "one_cpu": boolean,
    }
)


def build(values: dict[str, Any], environ: Mapping[str, str]) -> tuple[WebSettings, tuple[str, str] | None]:
    """The settings, or a (key, problem) for config.py to report."""
    web = WebSettings(**{**values, "secret": environ.get(ENV_SECRET) or values.get("secret", "")})
    if not web.secret:
        return web, ("secret", f"missing (or set {ENV_SECRET}): it signs the download links")
    if not web.token and not is_loopback(web.host):
        return web, ("token", "required when listen is not a loopback address")
    return web, None
