"""contract.md §2: the INI file, the seed's [download_task], environment overrides, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dlsupervisor import config
from dlsupervisor.errors import ConfigError

CONTRACT_EXAMPLE = """
[supervisor]
run_dir = /run/dlsupervisor      ; pidfile and status live here
log_level = INFO
log_file =                       ; empty: stderr (journald under systemd)
stop_timeout = 30                ; SIGTERM: seconds in-flight exports may finish
kill_grace = 5                   ; timeout: seconds between soft stop and SIGKILL
min_uptime = 1                   ; a child that dies younger than this is crash-looping
max_backoff = 30                 ; longest wait between restarts of a crash-looping child

[database]
url = mysql://root@127.0.0.1:3306/dlsupervisor     ; or sqlite:///var/lib/dlsupervisor/dl.db

[redis]                          ; omit the section to use the database as the queue
url = redis://127.0.0.1:6379/0
key_prefix = dl:

[scheduler]
poll_interval = 0.5              ; seconds between scans of the tables
file_ttl = 259200                ; seconds a finished file stays valid (expire_time)

[subtype:demo]                   ; one section per subtype; the name is free text
handler = myapp.exports:DemoTask ; a DownloadTaskBase subclass, imported in the worker
workers = 2
timeout = 600                    ; seconds one item may run; 0 = no limit
max_items = 0                    ; recycle a worker after this many items; 0 = never
max_memory_mb = 0                ; recycle a worker (after its item) whose RSS, children
                                 ; included, passes this; 0 = never
"""


def write(tmp_path, text, name="c.ini"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_the_contract_example_loads_as_written(tmp_path):
    settings = config.load(write(tmp_path, CONTRACT_EXAMPLE), environ={})
    assert settings.supervisor.run_dir == "/run/dlsupervisor"
    assert settings.supervisor.stop_timeout == 30 and settings.supervisor.kill_grace == 5
    assert settings.database.kind == "mysql" and settings.database.name == "dlsupervisor"
    assert settings.database.host == "127.0.0.1" and settings.database.password == ""
    assert settings.redis.url == "redis://127.0.0.1:6379/0" and settings.redis.key_prefix == "dl:"
    assert settings.scheduler.poll_interval == 0.5 and settings.scheduler.file_ttl == 259200
    (demo,) = settings.subtypes
    assert (demo.name, demo.handler, demo.workers, demo.timeout) == ("demo", "myapp.exports:DemoTask", 2, 600)
    assert demo.multi is None and demo.sub_type is None


def test_the_seed_section_is_accepted_with_empty_passwords(tmp_path):
    """defects.md #27: an empty dbPassword was rejected; a Redis without password could not be set."""
    path = write(
        tmp_path,
        """
        [download_task]
        dbHost=localhost
        dbPort=3306
        dbUser=root
        dbPassword=
        dbName=cti
        redisHost=localhost
        redisPort=6379
        redisDb=0
        """,
    )
    settings = config.load(path, environ={})
    assert settings.database.url == "mysql://root@localhost:3306/cti"
    assert settings.database.password == ""
    assert settings.redis.url == "redis://localhost:6379/0"


def test_seed_passwords_with_url_characters_survive(tmp_path):
    path = write(
        tmp_path,
        """
        [download_task]
        dbHost=db
        dbUser=app
        dbPassword=p@ss:w/rd
        dbName=cti
        redisHost=cache
        redisPassword=s3cret#
        redisDb=2
        """,
    )
    settings = config.load(path, environ={})
    assert settings.database.password == "p@ss:w/rd" and settings.database.user == "app"
    assert settings.redis.url == "redis://:s3cret%23@cache:6379/2"
    assert "p@ss" not in settings.database.redacted()


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, CONTRACT_EXAMPLE)
    environ = {
        "DLSUPERVISOR_DATABASE_URL": "mysql://app:secret@db.internal:3307/prod",
        "DLSUPERVISOR_REDIS_URL": "redis://:pw@cache:6380/1",
    }
    settings = config.load(path, environ=environ)
    assert (settings.database.host, settings.database.port, settings.database.password) == (
        "db.internal",
        3307,
        "secret",
    )
    assert settings.redis.url == "redis://:pw@cache:6380/1"


def test_no_redis_section_means_the_database_is_the_queue(tmp_path):
    path = write(tmp_path, "[database]\nurl = sqlite:///var/dl.db\n")
    settings = config.load(path, environ={})
    assert settings.redis is None
    assert settings.database.kind == "sqlite" and settings.database.path == "/var/dl.db"


BAD = [
    ("[database]\nurl = mysql://r@h/d\n[bogus]\n", "[bogus]: unknown section"),
    ("[database]\nurl = mysql://r@h/d\nspeed = 3\n", "[database] speed: unknown key"),
    ("[database]\nurl = mysql://r@h/d\n[supervisor]\nstop_timeout = soon\n", "[supervisor] stop_timeout:"),
    ("[database]\nurl = mysql://r@h/d\n[subtype:a]\nhandler = m:C\nworkers = -1\n", "[subtype:a] workers:"),
    ("[database]\nurl = mysql://r@h/d\n[subtype:a]\nworkers = 1\n", "[subtype:a] handler: missing"),
    ("[database]\nurl = mysql://r@h/d\n[subtype:a]\nhandler = nocolon\n", "[subtype:a] handler:"),
    ("[database]\nurl = postgres://h/d\n", "[database] url: unsupported database url scheme"),
    ("[supervisor]\nlog_level = LOUD\n[database]\nurl = mysql://r@h/d\n", "[supervisor] log_level:"),
    (
        "[download_task]\ndbHost=h\ndbName=d\n[database]\nurl = mysql://r@h/d\n",
        "[download_task]: give either",
    ),
    ("[download_task]\ndbHost=h\ndbName=d\ndbPort=x\n", "[download_task] dbPort: must be a port"),
    ("[scheduler]\npoll_interval = 0\n[database]\nurl = mysql://r@h/d\n", "[scheduler] poll_interval:"),
    (
        "[database]\nurl = mysql://r@h/d\n[subtype:a]\nhandler = m:A\nsub_type = 3\n"
        "[subtype:b]\nhandler = m:B\nsub_type = 3\n",
        "[subtype:b] sub_type: 3 is also the sub_type of [subtype:a]",
    ),
    ("[supervisor]\n", "[database] url: missing"),
    ("[database]\nurl = mysql://r@h/d\nnot an option line\n", "line 3: not an option line is not"),
    ("url = x\n", "line 1: url = x comes before any [section]"),
]


@pytest.mark.parametrize("text, expected", BAD, ids=[e for _, e in BAD])
def test_every_bad_value_is_one_line_naming_file_section_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        config.load(path, environ={})
    message = str(raised.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message
    assert "\n" not in message


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.ini: cannot read: No such file"):
        config.load(str(tmp_path / "nope.ini"), environ={})


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "[database]\nurl = mysql://r@h/d\n[subtype:a]\nhandler = m:C\nworkers = many\n",
            "[subtype:a] workers",
        ),
        (
            "[database]\nurl = sqlite:////tmp/x.db\n[subtype:a]\nhandler = tests.hooks.nowhere:Gone\n",
            "[subtype:a] handler: cannot import tests.hooks.nowhere",
        ),
        (
            "[database]\nurl = sqlite:////tmp/x.db\n[subtype:a]\nhandler = tests.hooks.behaviours:mark\n",
            "[subtype:a] handler: tests.hooks.behaviours:mark is not a DownloadTaskBase subclass",
        ),
    ],
)
def test_the_cli_reports_bad_configuration_with_exit_2_and_no_traceback(tmp_path, text, expected):
    path = write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "dlsupervisor", "check", "-c", path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_the_seed_section_takes_an_optional_redis_key_prefix(tmp_path):
    seed = "[download_task]\ndbHost=db\ndbName=cti\nredisHost=cache\n"
    assert config.load(write(tmp_path, seed), environ={}).redis.key_prefix == "dl:"
    settings = config.load(write(tmp_path, seed + "keyPrefix=staging:\n"), environ={})
    assert settings.redis.key_prefix == "staging:"


def test_the_applications_own_sections_are_refused_unless_asked_for(tmp_path):
    """The daemon's file is all ours; a seed script's config.ini is shared with its code."""
    path = write(tmp_path, "[download_task]\ndbHost=db\ndbName=cti\n\n[oss]\nbucket = reports\n")
    with pytest.raises(ConfigError, match=r"\[oss\]: unknown section"):
        config.load(path, environ={})
    assert config.load(path, environ={}, foreign_sections=True).database.name == "cti"
    with open(path, "a") as handle:
        handle.write("[supervisor]\nstop_timeout = soon\n")
    with pytest.raises(ConfigError, match=r"\[supervisor\] stop_timeout"):
        config.load(path, environ={}, foreign_sections=True)


WEB_BASE = """
[database]
url = sqlite:///./dl.db

[subtype:a]
handler = m:A
max_downloads = 2

[subtype:b]
handler = m:B
"""


def test_the_web_section_loads_with_its_defaults_and_limits(tmp_path):
    text = (
        WEB_BASE
        + "[web]\nlisten = 127.0.0.1:8480\npublic_url = http://h:8480/\n"
        + "secret = s3cr3t-k\nmax_downloads = 5\n"
    )
    settings = config.load(write(tmp_path, text), environ={})
    web = settings.web
    assert (web.host, web.port, web.public_url, web.secret, web.token) == (
        "127.0.0.1",
        8480,
        "http://h:8480",
        "s3cr3t-k",
        "",
    )
    assert (settings.download_limit("a"), settings.download_limit("b"), settings.download_limit(None)) == (
        2,
        5,
        5,
    )
    assert "s3cr3t-k" not in repr(settings)
    assert config.load(write(tmp_path, WEB_BASE), environ={}).web is None
    from_env = config.load(write(tmp_path, WEB_BASE + "[web]\n"), environ={"DLSUPERVISOR_WEB_SECRET": "e"})
    assert from_env.web.secret == "e" and from_env.web.listen == "127.0.0.1:8480"


@pytest.mark.parametrize(
    "section, problem",
    [
        ("[web]\n", r"\[web\] secret: missing \(or set DLSUPERVISOR_WEB_SECRET\)"),
        (
            "[web]\nsecret = k\nlisten = 0.0.0.0:8480\n",
            r"\[web\] token: required when listen is not a loopback",
        ),
        ("[web]\nsecret = k\nlisten = 8480\n", r"\[web\] listen: must be host:port"),
        ("[web]\nsecret = k\npublic_url = h:1\n", r"\[web\] public_url: must be an http"),
        ("[web]\nsecret = k\nmax_downloads = -1\n", r"\[web\] max_downloads: must be a whole number"),
        ("[web]\nsecret = k\nsecrte = x\n", r"\[web\] secrte: unknown key"),
    ],
)
def test_a_bad_web_section_is_one_line_naming_the_key(tmp_path, section, problem):
    with pytest.raises(ConfigError, match=problem):
        config.load(write(tmp_path, WEB_BASE + section), environ={})
