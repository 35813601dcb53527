"""Issue 11: no password in a repr of the settings, whatever form the file gives it in."""

from __future__ import annotations

import textwrap
from urllib.parse import quote

import pytest

from dlsupervisor import config

SECRET = "Zq7pW0rd"  # the distinctive core of every password below, found in any encoding
DB_PASSWORD = f"{SECRET}db@:/#%"  # characters a url must quote
REDIS_PASSWORD = f"{SECRET}redis"


def write(tmp_path, text: str) -> str:
    path = tmp_path / "supervisor.ini"
    path.write_text(textwrap.dedent(text))
    return str(path)


def shown(settings: config.Settings) -> str:
    """Every rendering of the settings a log line or traceback could carry."""
    parts = [settings, settings.database, settings.redis]
    return "\n".join([repr(p) for p in parts] + [str(p) for p in parts] + [f"{settings}", f"{parts!r}"])


MODERN = f"""
    [database]
    url = mysql://app:{quote(DB_PASSWORD, safe="")}@db.internal:3307/prod
    [redis]
    url = redis://dl:{REDIS_PASSWORD}@cache:6379/0
"""
SEED = f"""
    [download_task]
    dbHost = db
    dbUser = app
    dbPassword = {DB_PASSWORD}
    dbName = cti
    redisHost = cache
    redisPassword = {REDIS_PASSWORD}
"""


@pytest.mark.parametrize("text", [MODERN, SEED], ids=["urls", "seed-keys"])
def test_no_repr_of_the_settings_shows_a_password(tmp_path, text):
    settings = config.load(write(tmp_path, text), environ={})
    assert settings.database.password == DB_PASSWORD  # still there for the connection
    rendered = shown(settings)
    assert SECRET not in rendered, rendered
    assert "app:***@" in repr(settings.database) and ":***@cache" in repr(settings.redis)
    assert "db.internal" in rendered or "host='db'" in rendered  # the rest stays readable


def test_passwords_from_the_environment_are_hidden_too(tmp_path):
    path = write(tmp_path, "[database]\nurl = sqlite:///./dl.db\n")
    environ = {
        config.ENV_DATABASE_URL: f"mysql://app:{SECRET}@db:3306/prod",
        config.ENV_REDIS_URL: f"redis://:{SECRET}@cache:6380/1",
    }
    settings = config.load(path, environ=environ)
    assert settings.database.password == SECRET
    assert SECRET not in shown(settings)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (f"redis://:{SECRET}@cache:6379/0", "redis://:***@cache:6379/0"),
        (f"redis://cache:6379/0?password={SECRET}&db=1", "redis://cache:6379/0?password=***&db=1"),
        (f"unix://:{SECRET}@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        (f"mysql://app:{quote(DB_PASSWORD, safe='')}@db/prod", "mysql://app:***@db/prod"),
        ("mysql://app@db/prod", "mysql://app@db/prod"),
        ("sqlite:///./dl.db", "sqlite:///./dl.db"),
        ("sqlite:////var/lib/dlsupervisor/dl.db", "sqlite:////var/lib/dlsupervisor/dl.db"),
    ],
)
def test_redact_hides_the_password_and_keeps_everything_else(url, redacted):
    assert config.redact(url) == redacted
