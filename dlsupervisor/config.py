"""The INI file of contract.md §2 (and the seed's [download_task]) as frozen, validated settings.

Every problem is one ConfigError line naming file, section and key.  Nothing
here imports handlers: the master loads configuration too (architecture.md, invariant 3).
"""

from __future__ import annotations

import configparser
import dataclasses
import importlib.util
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from dlsupervisor import tls
from dlsupervisor.errors import ConfigError
from dlsupervisor.storage import config as storage_config
from dlsupervisor.storage.config import StorageSettings
from dlsupervisor.values import boolean
from dlsupervisor.web import settings as web_config
from dlsupervisor.web.settings import WebSettings

ENV_DATABASE_URL = "DLSUPERVISOR_DATABASE_URL"
ENV_REDIS_URL = "DLSUPERVISOR_REDIS_URL"
# Passwords kept out of the file: used when the url (or [redis] sentinel_password) has none.
ENV_DATABASE_PASSWORD = "DLSUPERVISOR_DATABASE_PASSWORD"
ENV_REDIS_PASSWORD = "DLSUPERVISOR_REDIS_PASSWORD"
ENV_SENTINEL_PASSWORD = "DLSUPERVISOR_REDIS_SENTINEL_PASSWORD"


@dataclass(frozen=True)
class SupervisorSettings:
    run_dir: str = "/run/dlsupervisor"
    log_level: str = "INFO"
    log_file: str = ""
    stop_timeout: float = 30.0
    kill_grace: float = 5.0
    min_uptime: float = 1.0
    max_backoff: float = 30.0
    heartbeat_timeout: float = 60.0  # an idle worker silent this long is replaced


@dataclass(frozen=True, repr=False)
class DatabaseSettings:
    url: str = field(repr=False)  # may hold the password: repr shows redacted() instead
    kind: str  # "mysql" or "sqlite"
    host: str = ""
    port: int = 3306
    user: str = ""
    password: str = field(default="", repr=False)
    name: str = ""
    path: str = ""  # sqlite only
    tls: tls.MysqlTls = tls.MysqlTls()  # the url's ssl_* parameters (tls.py)
    driver: str = "pymysql"  # the store's MySQL driver, [database] driver resolved (mysql_driver)

    def redacted(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return _redacted_repr(self)


@dataclass(frozen=True, repr=False)
class RedisSettings:
    url: str = field(repr=False)  # may hold the password: repr shows redacted() instead
    key_prefix: str = "dl:"
    password: str = field(default="", repr=False)  # from the environment, when the url has none
    sentinels: tuple[tuple[str, int], ...] = ()  # set: the url's host and port are not used
    service_name: str = ""
    sentinel_password: str = field(default="", repr=False)

    def redacted(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return _redacted_repr(self)


@dataclass(frozen=True)
class SchedulerSettings:
    poll_interval: float = 0.5
    file_ttl: int = 259200
    lease: float = 60.0  # a PROCESSING item with no heartbeat this long is an orphan
    redispatch_after: float = 10.0  # a READY item waiting this long is sent again
    batch_size: int = 1000  # rows one step of a pass handles at most


@dataclass(frozen=True)
class SubtypeSettings:
    name: str
    handler: str
    workers: int = 1
    timeout: float = 600.0
    max_items: int = 0
    max_memory_mb: int = 0
    max_per_org: int = 0  # at most this many items of one org run at once in the subtype (0: no cap)
    type: int | None = None
    sub_type: int | None = None
    queue_key: str | None = None
    multi: bool | None = None
    notify_url: str = ""  # completion notices: POSTed here (contract.md §9); empty: none
    notify_for: float = 86400.0  # seconds a notice is retried before it is given up
    max_downloads: int | None = None  # None: [web] max_downloads


@dataclass(frozen=True)
class Settings:
    path: str
    database: DatabaseSettings
    redis: RedisSettings | None
    supervisor: SupervisorSettings = SupervisorSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    subtypes: tuple[SubtypeSettings, ...] = ()
    storage: StorageSettings = field(default_factory=lambda: storage_config.build({})[0])
    web: WebSettings | None = None  # no [web] section: no web child
    web_secret: str = field(default="", repr=False)  # signs links and notices; never logged

    def download_limit(self, name: str | None) -> int:
        """The download limit of a subtype's items (0: none): its [subtype:], else [web]."""
        sub = self.subtype(name) if name else None
        if sub is not None and sub.max_downloads is not None:
            return sub.max_downloads
        return self.web.max_downloads if self.web else 0

    def subtype(self, name: str) -> SubtypeSettings | None:
        return next((s for s in self.subtypes if s.name == name), None)


def redact(url: str) -> str:
    """The url with any password (user:PASSWORD@ or ?password=) shown as ***, for reprs and `check`."""
    parts = original = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hostport}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key.lower() == "password" for key, _ in query):
        shown = [(key, "***" if key.lower() == "password" else value) for key, value in query]
        parts = parts._replace(query=urlencode(shown, safe="*"))
    return url if parts == original else parts.geturl()  # geturl() turns sqlite:/// into sqlite:/


def _redacted_repr(settings: DatabaseSettings | RedisSettings) -> str:
    """The dataclass repr with the url redacted: reprs reach logs and tracebacks."""
    shown = [f"url={settings.redacted()!r}"]
    shown += [f"{f.name}={getattr(settings, f.name)!r}" for f in fields(settings) if f.repr]
    return f"{type(settings).__name__}({', '.join(shown)})"


# --- value parsers: each raises ValueError with a short reason -------------------------


def _nonneg_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be a number >= 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a number > 0")
    return value


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be a whole number >= 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a whole number >= 1")
    return value


def _log_level(text: str) -> str:
    level = text.upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _handler_ref(text: str) -> str:
    module, sep, attr = text.partition(":")
    if not sep or not module or not attr:
        raise ValueError("must be module.path:ClassName")
    return text


def _text(text: str) -> str:
    return text


def _nonempty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _notify_url(text: str) -> str:
    if text and urlsplit(text).scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    return text


Parser = Callable[[str], Any]

SUPERVISOR_KEYS: Mapping[str, Parser] = MappingProxyType(
    {
        "run_dir": _nonempty,
        "log_level": _log_level,
        "log_file": _text,
        "stop_timeout": _nonneg_float,
        "kill_grace": _nonneg_float,
        "min_uptime": _nonneg_float,
        "max_backoff": _positive_float,
        "heartbeat_timeout": _positive_float,
    }
)
SCHEDULER_KEYS: Mapping[str, Parser] = MappingProxyType(
    {
        "poll_interval": _positive_float,
        "file_ttl": _positive_int,
        "lease": _positive_float,
        "redispatch_after": _positive_float,
        "batch_size": _positive_int,
    }
)
SUBTYPE_KEYS: Mapping[str, Parser] = MappingProxyType(
    {
        "handler": _handler_ref,
        "workers": _nonneg_int,
        "timeout": _nonneg_float,
        "max_items": _nonneg_int,
        "max_memory_mb": _nonneg_int,
        "max_per_org": _nonneg_int,
        "type": int,
        "sub_type": int,
        "queue_key": _nonempty,
        "multi": boolean,
        "notify_url": _notify_url,
        "notify_for": _positive_float,
        "max_downloads": _nonneg_int,
    }
)
DATABASE_KEYS = ("url", "driver")
MYSQL_DRIVERS = ("auto", "pymysql", "mysqlclient")
REDIS_KEYS = ("url", "key_prefix", "sentinels", "service_name", "sentinel_password")
SEED_KEYS = MappingProxyType(
    {
        "dbhost": "dbHost",
        "dbport": "dbPort",
        "dbuser": "dbUser",
        "dbpassword": "dbPassword",
        "dbname": "dbName",
        "redishost": "redisHost",
        "redisport": "redisPort",
        "redispassword": "redisPassword",
        "redisdb": "redisDb",
        "keyprefix": "keyPrefix",  # not in the seed: lets several deployments share one Redis
        # Not in the seed either: the [database] url's ssl_* parameters (tls.py), and rediss://.
        "dbsslmode": "dbSslMode",
        "dbsslca": "dbSslCa",
        "dbsslcert": "dbSslCert",
        "dbsslkey": "dbSslKey",
        "redissslca": "redisSslCa",
    }
)
SEED_TLS_KEYS = MappingProxyType(
    {"ssl_mode": "dbSslMode", "ssl_ca": "dbSslCa", "ssl_cert": "dbSslCert", "ssl_key": "dbSslKey"}
)


class _Reader:
    """Wraps a parsed file so every error names file, section and key."""

    def __init__(self, path: str, parser: configparser.ConfigParser) -> None:
        self.path = path
        self.parser = parser

    def error(self, section: str, key: str | None, problem: str) -> ConfigError:
        where = f"[{section}] {key}" if key else f"[{section}]"
        return ConfigError(f"{self.path}: {where}: {problem}")

    def check_keys(self, section: str, allowed: Mapping[str, Any] | tuple[str, ...]) -> None:
        for key in self.parser[section]:
            if key not in allowed:
                raise self.error(section, key, "unknown key")

    def typed(self, section: str, keys: Mapping[str, Parser]) -> dict[str, Any]:
        self.check_keys(section, keys)
        values = {}
        for key, raw in self.parser[section].items():
            try:
                values[key] = keys[key](raw.strip())
            except ValueError as exc:
                reason = str(exc) if "must" in str(exc) else "not a valid value"
                raise self.error(section, key, f"{reason} (got {raw.strip()!r})") from None
        return values


def load(path: str, environ: Mapping[str, str] | None = None, *, foreign_sections: bool = False) -> Settings:
    """Read and validate the file at `path`; raise ConfigError (one line) on any problem.

    `foreign_sections`: sections that are not ours belong to the application and are
    skipped -- the seed's scripts shared config.ini with their own code, and the
    seed ignored everything but [download_task].  Keys of our sections stay strict.
    """
    environ = os.environ if environ is None else environ
    abspath = os.path.abspath(path)
    reader = _Reader(path, _parse_file(path))
    sections = reader.parser.sections()
    for section in sections:
        known = section in ("supervisor", "database", "redis", "scheduler", "storage", "web", "download_task")
        if not known and not section.startswith("subtype:") and not foreign_sections:
            raise reader.error(section, None, "unknown section")

    supervisor = SupervisorSettings(**_section(reader, "supervisor", SUPERVISOR_KEYS))
    scheduler = SchedulerSettings(**_section(reader, "scheduler", SCHEDULER_KEYS))
    database, redis = _backends(reader, environ)
    subtypes = tuple(_subtype(reader, s) for s in sections if s.startswith("subtype:"))
    _check_unique_routes(reader, subtypes)
    storage, problem = storage_config.build(_section(reader, "storage", storage_config.STORAGE_KEYS))
    if problem:
        raise reader.error("storage", *problem)
    web = None
    if reader.parser.has_section("web"):
        web, problem = web_config.build(reader.typed("web", web_config.WEB_KEYS), environ)
        if problem:
            raise reader.error("web", *problem)
    web_secret = web.secret if web else environ.get(web_config.ENV_SECRET, "")
    return Settings(
        path=abspath,
        database=database,
        redis=redis,
        supervisor=supervisor,
        scheduler=scheduler,
        subtypes=subtypes,
        storage=storage,
        web=web,
        web_secret=web_secret,
    )


def _parse_file(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except configparser.MissingSectionHeaderError as exc:
        problem = f"line {exc.lineno}: {exc.line.strip()} comes before any [section]"
        raise ConfigError(f"{path}: not a valid INI file: {problem}") from None
    except configparser.ParsingError as exc:
        lineno, shown = exc.errors[0]  # shown is repr(line)
        line = shown[1:-1].replace("\\n", "").strip() if shown[:1] in "'\"" else shown.strip()
        problem = f"line {lineno}: {line} is not a [section] or a key = value"
        raise ConfigError(f"{path}: not a valid INI file: {problem}") from None
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(f"{path}: [{exc.section}] {exc.option}: given twice (line {exc.lineno})") from None
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(f"{path}: [{exc.section}]: given twice (line {exc.lineno})") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{path}: not a valid INI file: {first_line}") from None
    return parser


def _section(reader: _Reader, name: str, keys: Mapping[str, Parser]) -> dict[str, Any]:
    if not reader.parser.has_section(name):
        return {}
    return reader.typed(name, keys)


def _subtype(reader: _Reader, section: str) -> SubtypeSettings:
    name = section.partition(":")[2].strip()
    if not name:
        raise reader.error(section, None, "a subtype needs a name, as in [subtype:demo]")
    values = reader.typed(section, SUBTYPE_KEYS)
    if "handler" not in values:
        raise reader.error(section, "handler", "missing (module.path:ClassName)")
    return SubtypeSettings(name=name, **values)


def _check_unique_routes(reader: _Reader, subtypes: tuple[SubtypeSettings, ...]) -> None:
    seen: dict[int, str] = {}
    for sub in subtypes:
        if sub.sub_type is None:
            continue
        if sub.sub_type in seen:
            problem = f"{sub.sub_type} is also the sub_type of [subtype:{seen[sub.sub_type]}]"
            raise reader.error(f"subtype:{sub.name}", "sub_type", problem)
        seen[sub.sub_type] = sub.name


def _backends(reader: _Reader, environ: Mapping[str, str]) -> tuple[DatabaseSettings, RedisSettings | None]:
    parser = reader.parser
    seed = parser.has_section("download_task")
    if seed and (parser.has_section("database") or parser.has_section("redis")):
        problem = "give either [download_task] or [database]/[redis], not both"
        raise reader.error("download_task", None, problem)
    if seed:
        db_url, redis_url, prefix = _seed_urls(reader)
    else:
        db_url, redis_url, prefix = _modern_urls(reader)
    db_url = environ.get(ENV_DATABASE_URL) or db_url
    redis_url = environ.get(ENV_REDIS_URL) or redis_url
    if not db_url:
        raise reader.error("database", "url", f"missing (or set {ENV_DATABASE_URL})")
    try:
        database = parse_database_url(db_url)
    except ValueError as exc:
        raise reader.error(*_seed_source(seed, str(exc), "dbHost", "database"), str(exc)) from None
    if database.kind == "mysql" and not database.password and environ.get(ENV_DATABASE_PASSWORD):
        database = dataclasses.replace(database, password=environ[ENV_DATABASE_PASSWORD])
    wanted = parser["database"].get("driver", "auto").strip() if parser.has_section("database") else "auto"
    if wanted not in MYSQL_DRIVERS:
        raise reader.error("database", "driver", f"must be one of {', '.join(MYSQL_DRIVERS)}")
    if database.kind == "mysql":
        try:
            database = dataclasses.replace(database, driver=mysql_driver(wanted, database))
        except ValueError as exc:
            raise reader.error("database", "driver", str(exc)) from None
    if not redis_url:
        return database, None
    try:
        if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis:// (or rediss://) url")
        tls.check_redis_url(redis_url)
    except ValueError as exc:
        raise reader.error(*_seed_source(seed, str(exc), "redisHost", "redis"), str(exc)) from None
    sentinel = _sentinel_keys(reader, environ)
    password = environ.get(ENV_REDIS_PASSWORD, "")
    return database, RedisSettings(url=redis_url, key_prefix=prefix, password=password, **sentinel)


def _seed_source(seed: bool, problem: str, seed_key: str, section: str) -> tuple[str, str]:
    """Where a url problem was written: [section] url, or the seed key it came from."""
    if not seed:
        return section, "url"
    match = re.search(r"url parameter (\w+)", problem)
    param = match.group(1) if match else ""
    if param == "ssl_ca_certs":
        return "download_task", "redisSslCa"
    return "download_task", SEED_TLS_KEYS.get(param, seed_key)


def _sentinel_keys(reader: _Reader, environ: Mapping[str, str]) -> dict[str, Any]:
    """[redis] sentinels = host:port, host:port and service_name, both or neither."""
    section = reader.parser["redis"] if reader.parser.has_section("redis") else {}
    text = section.get("sentinels", "").strip()
    name = section.get("service_name", "").strip()
    if bool(text) != bool(name):
        missing = "service_name" if text else "sentinels"
        raise reader.error("redis", missing, "missing (sentinels and service_name go together)")
    sentinels = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise reader.error("redis", "sentinels", f"{entry!r} is not host:port (as in 10.0.0.5:26379)")
        sentinels.append((host.strip("[]"), int(port)))
    password = section.get("sentinel_password", "").strip() or environ.get(ENV_SENTINEL_PASSWORD, "")
    return {"sentinels": tuple(sentinels), "service_name": name, "sentinel_password": password}


def mysql_driver(wanted: str, db: DatabaseSettings) -> str:
    """[database] driver resolved: `auto` is mysqlclient (the C client, the `mysqlclient`
    extra) when it is installed and the url asks for no TLS, else PyMySQL; mysqlclient
    asked for must be there, and is refused with TLS (not supported with it yet)."""
    installed = importlib.util.find_spec("MySQLdb") is not None
    plain = db.tls.mode in ("", "disabled")
    if wanted == "auto":
        return "mysqlclient" if installed and plain else "pymysql"
    if wanted == "mysqlclient" and not installed:
        raise ValueError("mysqlclient is not installed (pip install 'dlsupervisor[mysqlclient]')")
    if wanted == "mysqlclient" and not plain:
        raise ValueError("mysqlclient does not take the url's ssl_* parameters yet: use driver = pymysql")
    return wanted


def _modern_urls(reader: _Reader) -> tuple[str, str, str]:
    parser = reader.parser
    db_url = redis_url = ""
    prefix = RedisSettings.key_prefix
    if parser.has_section("database"):
        reader.check_keys("database", DATABASE_KEYS)
        db_url = parser["database"].get("url", "").strip()
    if parser.has_section("redis"):
        reader.check_keys("redis", REDIS_KEYS)
        redis_url = parser["redis"].get("url", "").strip() or "redis://127.0.0.1:6379/0"
        if not parser["redis"].get("url", "").strip() and parser["redis"].get("sentinels", "").strip():
            redis_url = "redis://"  # the Sentinels say where; a url would add db, password, TLS
        prefix = parser["redis"].get("key_prefix", prefix).strip()
    return db_url, redis_url, prefix


def _seed_urls(reader: _Reader) -> tuple[str, str, str]:
    """The seed's keys as urls; an empty password (database or Redis) is allowed.

    `keyPrefix` (optional, default `dl:`) is ours: the seed had no way to keep two
    deployments apart in one Redis database.
    """
    section = reader.parser["download_task"]
    reader.check_keys("download_task", SEED_KEYS)

    def get(key: str, default: str = "") -> str:
        return section.get(key.lower(), default).strip()

    def port(key: str, default: str) -> int:
        try:
            return _positive_int(get(key, default) or default)
        except ValueError:
            raise reader.error("download_task", key, "must be a port number") from None

    if not get("dbHost") or not get("dbName"):
        missing = "dbHost" if not get("dbHost") else "dbName"
        raise reader.error("download_task", missing, "missing")
    user = quote(get("dbUser", "root"), safe="")
    password = get("dbPassword")
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    db_url = f"mysql://{auth}{get('dbHost')}:{port('dbPort', '3306')}/{quote(get('dbName'))}"
    db_tls = {param: get(key) for param, key in SEED_TLS_KEYS.items() if get(key)}
    if db_tls:
        db_url += "?" + urlencode(db_tls)
    redis_url = ""
    if get("redisHost"):
        db_index = get("redisDb", "0") or "0"
        if not db_index.isdigit():
            raise reader.error("download_task", "redisDb", "must be a whole number >= 0")
        secret = get("redisPassword")
        auth = f":{quote(secret, safe='')}@" if secret else ""
        redis_url = f"redis://{auth}{get('redisHost')}:{port('redisPort', '6379')}/{db_index}"
        if get("redisSslCa"):
            query = urlencode({"ssl_ca_certs": get("redisSslCa")})
            redis_url = f"rediss{redis_url[len('redis') :]}?{query}"
    return db_url, redis_url, get("keyPrefix") or RedisSettings.key_prefix


def parse_database_url(url: str) -> DatabaseSettings:
    """mysql://user:password@host:port/name or sqlite:///path (relative: sqlite:///./x.db)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(url[len("sqlite://") :])
        if path.startswith("/./") or path.startswith("/../"):
            path = path[1:]  # sqlite:///./dl.db: relative to the working directory
        elif path.startswith("/"):
            path = "/" + path.lstrip("/")  # sqlite:///abs and sqlite:////abs alike
        if not path.strip("/"):
            raise ValueError("sqlite url needs a path, as in sqlite:///var/lib/dlsupervisor/dl.db")
        return DatabaseSettings(url=url, kind="sqlite", path=path)
    if parts.scheme in ("mysql", "mariadb", "mysql+pymysql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ValueError("mysql url needs a database name, as in mysql://root@127.0.0.1/dl")
        try:
            port = parts.port or 3306
        except ValueError:
            raise ValueError("mysql url has a bad port") from None
        mysql_tls = tls.parse_mysql(tls.query_params(url))
        return DatabaseSettings(
            url=url,
            kind="mysql",
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            name=name,
            tls=mysql_tls,
        )
    raise ValueError(f"unsupported database url scheme {parts.scheme!r} (mysql:// or sqlite:///)")
