"""Issue 16's configuration: TLS url parameters, Sentinel keys, passwords from the environment.

Every bad value is one ConfigError line naming file, section and key; no secret in a repr.
"""

from __future__ import annotations

import textwrap

import pytest

from dlsupervisor import config
from dlsupervisor.errors import ConfigError


@pytest.fixture
def pem(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


def load(tmp_path, text, environ=None):
    path = tmp_path / "c.ini"
    path.write_text(textwrap.dedent(text))
    return config.load(str(path), environ or {})


def error(tmp_path, text, environ=None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, environ)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "c.ini")), message
    return message


def test_a_ca_alone_asks_for_verified_tls(tmp_path, pem):
    settings = load(tmp_path, f"[database]\nurl = mysql://u:pw@db.example:3306/x?ssl_ca={pem}\n")
    assert settings.database.tls == config.tls.MysqlTls("verify_identity", pem)
    assert settings.database.name == "x" and settings.database.password == "pw"
    assert "pw" not in repr(settings.database)


def test_each_ssl_mode_is_accepted_and_no_parameter_leaves_the_driver_default(tmp_path, pem):
    for mode in ("disabled", "preferred", "required", "verify_ca", "verify_identity"):
        url = f"mysql://u@h/x?ssl_mode={mode.upper()}" + (f"&ssl_ca={pem}" if "verify" in mode else "")
        assert load(tmp_path, f"[database]\nurl = {url}\n").database.tls.mode == mode
    assert load(tmp_path, "[database]\nurl = mysql://u@h/x\n").database.tls.mode == ""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ssl_mode=strict", "[database] url: url parameter ssl_mode must be one of disabled, preferred"),
        ("ssl_ca=/nonexistent/ca.pem", "[database] url: url parameter ssl_ca: no readable file /nonexistent"),
        ("ssl_moed=required", "[database] url: unknown url parameter ssl_moed"),
        ("ssl_mode=required&ssl_mode=disabled", "[database] url: url parameter ssl_mode given twice"),
        ("ssl_cert={pem}", "[database] url: url parameters ssl_cert and ssl_key go together"),
        ("ssl_mode=disabled&ssl_ca={pem}", "[database] url: url parameter ssl_mode=disabled contradicts"),
    ],
)
def test_bad_mysql_tls_parameters_are_one_line(tmp_path, pem, query, expected):
    message = error(tmp_path, f"[database]\nurl = mysql://u:secret@h/x?{query.format(pem=pem)}\n")
    assert expected in message and "secret" not in message, message


def test_the_seed_section_takes_tls_keys_and_names_them_in_errors(tmp_path, pem):
    seed = "[download_task]\ndbHost = db\ndbName = x\nredisHost = r\n"
    settings = load(tmp_path, seed + f"dbSslCa = {pem}\nredisSslCa = {pem}\n")
    assert settings.database.tls.mode == "verify_identity" and settings.database.tls.ca == pem
    assert settings.redis.url.startswith("rediss://r:6379/0?ssl_ca_certs=")
    assert "[download_task] dbSslMode:" in error(tmp_path, seed + "dbSslMode = maybe\n")
    assert "[download_task] dbSslCa:" in error(tmp_path, seed + "dbSslCa = /nonexistent\n")
    assert "[download_task] redisSslCa:" in error(tmp_path, seed + "redisSslCa = /nonexistent\n")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h/0?ssl_ca_certs={pem}", "url parameter ssl_ca_certs needs a rediss:// url"),
        ("rediss://h/0?ssl_cert_reqs=maybe", "url parameter ssl_cert_reqs must be one of none"),
        ("rediss://h/0?ssl_ca_certs=/nonexistent", "url parameter ssl_ca_certs: no readable file"),
        ("rediss://h/0?socket_timeout=1", "unknown url parameter socket_timeout"),
        (
            "rediss://h/0?ssl_cert_reqs=none&ssl_check_hostname=true",
            "url parameter ssl_check_hostname=true needs",
        ),
        ("http://h/0", "must be a redis:// (or rediss://) url"),
    ],
)
def test_bad_redis_urls_are_one_line(tmp_path, pem, url, expected):
    message = error(tmp_path, f"[database]\nurl = sqlite:///x.db\n[redis]\nurl = {url.format(pem=pem)}\n")
    assert f"[redis] url: {expected}" in message, message


def test_sentinels_and_service_name(tmp_path):
    text = "[database]\nurl = sqlite:///x.db\n[redis]\nsentinels = 10.0.0.5:26379, [::1]:26380\n"
    settings = load(
        tmp_path, text + "service_name = mymaster\n", {"DLSUPERVISOR_REDIS_SENTINEL_PASSWORD": "s3"}
    )
    assert settings.redis.sentinels == (("10.0.0.5", 26379), ("::1", 26380))
    assert settings.redis.service_name == "mymaster" and settings.redis.sentinel_password == "s3"
    assert "s3" not in repr(settings.redis)
    assert "[redis] service_name: missing" in error(tmp_path, text)
    bad = "[database]\nurl = sqlite:///x.db\n[redis]\nsentinels = host\nservice_name = m\n"
    assert "[redis] sentinels: 'host' is not host:port" in error(tmp_path, bad)


def test_passwords_may_come_from_the_environment(tmp_path):
    text = "[database]\nurl = mysql://u@h/x\n[redis]\nurl = rediss://u@h:6380/0\n"
    environ = {"DLSUPERVISOR_DATABASE_PASSWORD": "dbpw", "DLSUPERVISOR_REDIS_PASSWORD": "rpw"}
    settings = load(tmp_path, text, environ)
    assert settings.database.password == "dbpw" and settings.redis.password == "rpw"
    assert "dbpw" not in repr(settings) and "rpw" not in repr(settings)
    inline = load(tmp_path, "[database]\nurl = mysql://u:inline@h/x\n", environ)
    assert inline.database.password == "inline"  # the url's own password wins


MYSQL_URL = "[database]\nurl = mysql://root@127.0.0.1/dl{query}\n{driver}"


def driver_of(tmp_path, query="", driver=""):
    line = f"driver = {driver}" if driver else ""
    return load(tmp_path, MYSQL_URL.format(query=query, driver=line)).database.driver


def test_auto_takes_mysqlclient_when_installed_and_pymysql_when_the_url_asks_for_tls(tmp_path, pem):
    pytest.importorskip("MySQLdb")
    assert driver_of(tmp_path) == "mysqlclient"
    assert driver_of(tmp_path, driver="auto") == "mysqlclient"
    assert driver_of(tmp_path, "?ssl_mode=disabled") == "mysqlclient"
    assert driver_of(tmp_path, f"?ssl_ca={pem}") == "pymysql"
    assert driver_of(tmp_path, "?ssl_mode=required") == "pymysql"
    assert driver_of(tmp_path, driver="pymysql") == "pymysql"
    assert driver_of(tmp_path, driver="mysqlclient") == "mysqlclient"


def test_auto_falls_back_to_pymysql_and_mysqlclient_asked_for_must_be_installed(tmp_path, monkeypatch):
    real = config.importlib.util.find_spec
    monkeypatch.setattr(
        config.importlib.util, "find_spec", lambda name, *a: None if name == "MySQLdb" else real(name, *a)
    )
    assert driver_of(tmp_path) == "pymysql"
    message = error(tmp_path, MYSQL_URL.format(query="", driver="driver = mysqlclient"))
    assert "[database] driver: mysqlclient is not installed" in message, message


def test_a_driver_that_cannot_do_what_the_url_asks_is_one_line(tmp_path, pem):
    pytest.importorskip("MySQLdb")
    message = error(tmp_path, MYSQL_URL.format(query="?ssl_mode=required", driver="driver = mysqlclient"))
    assert "[database] driver: mysqlclient does not take the url's ssl_* parameters" in message, message
    message = error(tmp_path, MYSQL_URL.format(query="", driver="driver = mysql-connector"))
    assert "[database] driver: must be one of auto, pymysql, mysqlclient" in message, message
