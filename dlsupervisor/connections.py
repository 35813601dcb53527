"""Every connection to MySQL and Redis is made here, with the url's TLS, credentials and Sentinel.

One factory per server kind, so the store, the schema check, the queue (whose client
the registry and the election share) and `check` cannot differ in how they connect,
and `check` can say what a connection ended up with.  Nothing here logs a secret:
what is described is the redacted url, the TLS version and cipher, the master address.
"""

from __future__ import annotations

import ssl
from typing import Any

import pymysql
import redis
from pymysql.constants import CR
from redis.sentinel import Sentinel

from dlsupervisor import tls
from dlsupervisor.config import DatabaseSettings, RedisSettings


class _Connection(pymysql.connections.Connection):
    """PyMySQL's connection, its default context (TLS if the server offers it, unverified)
    made without the system's CA store: PyMySQL builds it with ssl.create_default_context(),
    which loads the store (~1-3 MB a process, and about 50 ms of CPU a connection: most of
    a web child's warm-up, one connection per server thread) for certificates it never
    verifies.  `_create_ssl_ctx` is PyMySQL's private method (tests/integration/test_mysql_connect.py
    fails if it stops being called)."""

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if sslp == {}:  # no TLS options: PyMySQL's PREFERRED mode
            return tls.unverified_context()
        return super()._create_ssl_ctx(sslp)


def mysql_connect(db: DatabaseSettings, **kwargs: Any) -> pymysql.connections.Connection:
    """pymysql.connect with the url's host, credentials and TLS; TLS asked for and not in use
    is an error (2026, as the C client says), whatever PyMySQL's version does about it."""
    if db.tls.mode == "disabled":
        kwargs["ssl_disabled"] = True
    elif db.tls.mode:
        try:
            kwargs["ssl"] = tls.mysql_context(db.tls)
        except (ssl.SSLError, OSError) as exc:  # a file that is not PEM, a key not the cert's
            problem = f"TLS: cannot load ssl_ca/ssl_cert/ssl_key: {exc}"
            raise pymysql.err.OperationalError(CR.CR_SSL_CONNECTION_ERROR, problem) from None
    conn = _Connection(
        host=db.host,
        port=db.port,
        user=db.user,
        password=db.password,
        database=db.name,
        defer_connect=True,
        **kwargs,
    )
    conn.connect()
    if db.tls.required and mysql_cipher(conn) is None:
        conn.close()
        problem = f"TLS is required (ssl_mode={db.tls.mode}) but the server does not offer it"
        raise pymysql.err.OperationalError(CR.CR_SSL_CONNECTION_ERROR, problem)
    return conn


def mysqlclient_connect(db: DatabaseSettings, **kwargs: Any) -> Any:
    """MySQLdb.connect (mysqlclient, the C client) with the url's host and credentials.

    Plain connections only (config.mysql_driver refuses the url's ssl_* parameters
    with it): `ssl_mode=disabled` is said to the client; with no ssl_mode the C client's
    own default holds (Connector/C 3.3, Debian 12's: no TLS, where PyMySQL's is TLS
    unverified if the server offers it).
    """
    import MySQLdb  # only in a process whose store uses it

    if db.tls.mode not in ("", "disabled"):
        raise MySQLdb.OperationalError(CR.CR_SSL_CONNECTION_ERROR, "TLS: not supported with mysqlclient")
    if db.tls.mode == "disabled":
        kwargs["ssl_mode"] = "DISABLED"
    return MySQLdb.connect(
        host=db.host, port=db.port, user=db.user, password=db.password, database=db.name, **kwargs
    )


def mysql_cipher(conn: pymysql.connections.Connection) -> tuple[str, str] | None:
    """(TLS version, cipher) of this connection's socket, or None in plain text."""
    sock = getattr(conn, "_sock", None)
    if not isinstance(sock, ssl.SSLSocket):
        return None
    cipher = sock.cipher()
    return (sock.version() or "", cipher[0] if cipher else "")


def tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS failure (an unknown CA, a host name mismatch) behind a PyMySQL or redis-py error."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = getattr(seen, "original_exception", None) or seen.__cause__ or seen.__context__
    return None


def describe_mysql(db: DatabaseSettings) -> str:
    """What a connection made now uses, as the server sees it (Ssl_version, Ssl_cipher)."""
    conn = mysql_connect(db, connect_timeout=5, read_timeout=10)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
            status = dict(cursor.fetchall())
    finally:
        conn.close()
    if not status.get("Ssl_version"):
        return "no TLS" + ("" if db.tls.mode == "disabled" else " (the server offers none; see ssl_mode)")
    verified = {
        "verify_identity": "certificate and host name verified",
        "verify_ca": "certificate verified, host name not",
    }.get(db.tls.mode, "certificate not verified")
    return f"TLS {status['Ssl_version']} {status.get('Ssl_cipher', '')}, {verified}"


# -- Redis ----------------------------------------------------------------------------------------


def _redis_kwargs(settings: RedisSettings, timeout: float) -> dict[str, Any]:
    kwargs = dict(redis.connection.parse_url(settings.url))
    for key in ("ssl_check_hostname", "ssl_cert_reqs"):
        kwargs.pop(key, None)  # redis-py's own parse; ours is typed and has the defaults
    if settings.url.startswith("rediss://"):
        kwargs.update(tls.redis_tls_kwargs(settings.url))
    if settings.password and "password" not in kwargs:
        kwargs["password"] = settings.password
    kwargs.update(
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 5.0),
        retry_on_timeout=False,
        **_driver_info(),
    )
    return kwargs


def _driver_info() -> dict[str, Any]:
    """redis-py 8 looks its own version up in the installed packages' metadata for every new
    connection (importlib.metadata: ~3 MB a process); the same CLIENT SETINFO, version given."""
    if not hasattr(redis, "DriverInfo"):
        return {}  # before 8: the version was read once, at import
    return {"driver_info": redis.DriverInfo(lib_version=redis.__version__)}


def redis_client(settings: RedisSettings, *, timeout: float = 10.0) -> redis.Redis:
    """A client on the url's server, or on the master the Sentinels name for `service_name`.

    Behind Sentinel redis-py asks the Sentinels at each (re)connect and turns a demoted
    master's READONLY into a ConnectionError, so a failover is an outage like a restart.
    """
    kwargs = _redis_kwargs(settings, timeout)
    if not settings.sentinels:
        return redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))
    ssl_on = kwargs.pop("connection_class", None) is redis.connection.SSLConnection
    for key in ("host", "port"):
        kwargs.pop(key, None)  # the Sentinels say where the master is
    return _sentinel(settings, timeout).master_for(settings.service_name, ssl=ssl_on, **kwargs)


def _sentinel(settings: RedisSettings, timeout: float) -> Sentinel:
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, 5.0),
        **_driver_info(),
    }
    if settings.sentinel_password:
        sentinel_kwargs["password"] = settings.sentinel_password
    return Sentinel(list(settings.sentinels), sentinel_kwargs=sentinel_kwargs)


def describe_redis(settings: RedisSettings, client: redis.Redis) -> str:
    """The Sentinel's current master and the TLS in use, for `check` (no secrets)."""
    shown = []
    if settings.sentinels:
        host, port = _sentinel(settings, 5.0).discover_master(settings.service_name)
        shown.append(f"master {host}:{port} of {settings.service_name} (Sentinel)")
    conn = client.connection_pool.get_connection("PING")
    try:
        conn.connect()
        sock = getattr(conn, "_sock", None)
        if isinstance(sock, ssl.SSLSocket):
            cipher = sock.cipher()
            shown.append(f"TLS {sock.version()} {cipher[0] if cipher else ''}")
        else:
            shown.append("no TLS")
    finally:
        client.connection_pool.release(conn)
    return ", ".join(shown)
