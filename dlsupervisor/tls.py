"""TLS settings of the database and Redis urls: parsed and checked here, applied by connections.py.

An operator writes them as url query parameters (README, Configuration), so one
string carries where and how to connect.  Each problem is a ValueError whose text
names the parameter; config.py turns it into one line naming file, section and key.
Nothing here connects, so config.py (which the master loads) can use it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import parse_qsl, urlsplit

# MySQL's own --ssl-mode names, weakest first.
SSL_MODES = ("disabled", "preferred", "required", "verify_ca", "verify_identity")
MYSQL_PARAMS = ("ssl_mode", "ssl_ca", "ssl_cert", "ssl_key")
# What a Redis url may carry besides host, port and db; the rest would reach redis-py
# as unknown keyword arguments and fail at the first command, not at load.
REDIS_PARAMS = ("db", "password", "username")
REDIS_TLS_PARAMS = (
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_cert_reqs",
    "ssl_check_hostname",
    "ssl_certfile",
    "ssl_keyfile",
)
CERT_REQS = ("none", "optional", "required")
_BOOLS = MappingProxyType(
    {"true": True, "yes": True, "1": True, "on": True} | dict.fromkeys(("false", "no", "0", "off"), False)
)


@dataclass(frozen=True)
class MysqlTls:
    """How to use TLS to MySQL; `mode` "" is PyMySQL's own default (TLS if offered, unverified)."""

    mode: str = ""
    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def required(self) -> bool:
        return self.mode in ("required", "verify_ca", "verify_identity")


def query_params(url: str) -> dict[str, str]:
    """The url's query parameters; one given twice is an error (which one would win?)."""
    found: dict[str, str] = {}
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key in found:
            raise ValueError(f"url parameter {key} given twice")
        found[key] = value
    return found


def _readable(param: str, path: str) -> str:
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ValueError(f"url parameter {param}: no readable file {path}")
    return path


def parse_mysql(params: Mapping[str, str]) -> MysqlTls:
    """ssl_mode, ssl_ca, ssl_cert, ssl_key; a CA or client certificate alone means verify_identity."""
    unknown = sorted(set(params) - set(MYSQL_PARAMS))
    if unknown:
        raise ValueError(f"unknown url parameter {unknown[0]} (known: {', '.join(MYSQL_PARAMS)})")
    files = {p: _readable(p, params[p]) for p in ("ssl_ca", "ssl_cert", "ssl_key") if params.get(p)}
    mode = params.get("ssl_mode", "").lower()
    if mode and mode not in SSL_MODES:
        raise ValueError(f"url parameter ssl_mode must be one of {', '.join(SSL_MODES)} (got {mode!r})")
    if not mode and files:
        mode = "verify_identity"  # asking for TLS by naming a file: verified, as a browser would
    if mode == "disabled" and files:
        raise ValueError("url parameter ssl_mode=disabled contradicts ssl_ca/ssl_cert/ssl_key")
    if ("ssl_key" in files) != ("ssl_cert" in files):
        raise ValueError("url parameters ssl_cert and ssl_key go together (a client certificate and its key)")
    return MysqlTls(mode, files.get("ssl_ca", ""), files.get("ssl_cert", ""), files.get("ssl_key", ""))


def mysql_context(tls: MysqlTls) -> ssl.SSLContext:
    """The context for `ssl=`: the CA given (else the system's), verification as the mode says."""
    ctx = ssl.create_default_context(cafile=tls.ca or None)
    ctx.check_hostname = tls.mode == "verify_identity"
    if tls.mode not in ("verify_ca", "verify_identity"):
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert:
        ctx.load_cert_chain(tls.cert, keyfile=tls.key or None)
    return ctx


def unverified_context() -> ssl.SSLContext:
    """TLS if offered, certificate not checked (PyMySQL's default): no CA store is loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def check_redis_url(url: str) -> None:
    """Only parameters redis-py takes from a url and we document; TLS ones only on rediss://."""
    params = query_params(url)
    tls = urlsplit(url).scheme == "rediss"
    for key, value in params.items():
        if key in REDIS_TLS_PARAMS and not tls:
            raise ValueError(f"url parameter {key} needs a rediss:// url")
        if key not in REDIS_PARAMS and key not in REDIS_TLS_PARAMS:
            known = ", ".join(REDIS_PARAMS + REDIS_TLS_PARAMS)
            raise ValueError(f"unknown url parameter {key} (known: {known})")
        _check_redis_value(key, value)
    if (
        params.get("ssl_cert_reqs", "required").lower() != "required"
        and redis_tls_kwargs(url)["ssl_check_hostname"]
    ):
        raise ValueError("url parameter ssl_check_hostname=true needs ssl_cert_reqs=required")


def _check_redis_value(key: str, value: str) -> None:
    if key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        _readable(key, value)
    if key == "ssl_cert_reqs" and value.lower() not in CERT_REQS:
        raise ValueError(f"url parameter ssl_cert_reqs must be one of {', '.join(CERT_REQS)} (got {value!r})")
    if key == "ssl_check_hostname" and value.lower() not in _BOOLS:
        raise ValueError(f"url parameter ssl_check_hostname must be true or false (got {value!r})")
    if key == "db" and not value.isdigit():
        raise ValueError(f"url parameter db must be a whole number >= 0 (got {value!r})")


def redis_tls_kwargs(url: str) -> dict[str, object]:
    """redis-py's SSL keyword arguments for a rediss:// url, typed, with the host name checked
    whenever the certificate is (redis-py 5 did not check it by default, 6 does)."""
    params = query_params(url)
    reqs = params.get("ssl_cert_reqs", "required").lower()
    check = params.get("ssl_check_hostname")
    kwargs: dict[str, object] = {k: v for k, v in params.items() if k in REDIS_TLS_PARAMS}
    kwargs["ssl_cert_reqs"] = reqs
    kwargs["ssl_check_hostname"] = _BOOLS[check.lower()] if check else reqs == "required"
    return kwargs
