"""Fixtures: every test gets its own database and Redis key prefix, on each backend."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import psutil
import pytest

from tests.helpers import services
from tests.helpers.env import Env

# mysql: MariaDB + Redis (production).  mysql-polling: MariaDB alone, so the queue is the
# database polled and the election is GET_LOCK.  sqlite: the embedded default, one file,
# polled queue, file-lock election.  DLSUPERVISOR_TEST_BACKENDS=sqlite (comma-separated)
# runs only those: .ci/run's extra Pythons need no server.
ALL_BACKENDS = ("mysql", "mysql-polling", "sqlite")


def selected_backends() -> tuple[str, ...]:
    """DLSUPERVISOR_TEST_BACKENDS, checked: a typo must not silently select nothing."""
    chosen = tuple(
        b.strip() for b in os.environ.get("DLSUPERVISOR_TEST_BACKENDS", "").split(",") if b.strip()
    )
    unknown = set(chosen) - set(ALL_BACKENDS)
    if unknown:
        raise pytest.UsageError(f"DLSUPERVISOR_TEST_BACKENDS: unknown {sorted(unknown)}; use {ALL_BACKENDS}")
    return chosen or ALL_BACKENDS


BACKENDS = selected_backends()


@pytest.fixture(scope="session", autouse=True)
def nothing_outlives_the_run(tmp_path_factory):
    """A test cut short (a timeout mid-teardown, a detached daemon whose pidfile never came)
    can leave a daemon behind: at the end, every process still running on this run's
    temporary files is killed by pid, so none outlives the suite."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid != os.getpid() and any(base in part for part in proc.info["cmdline"] or ()):
            with contextlib.suppress(psutil.Error):
                proc.kill()


def make_env(backend: str, tmp_path) -> tuple[Env, callable]:
    if backend not in BACKENDS:
        pytest.skip(f"backend {backend} not selected (DLSUPERVISOR_TEST_BACKENDS)")
    if backend in ("mysql", "mysql-polling"):
        db_url = services.create_mysql_database()
        if backend == "mysql-polling":
            return Env(backend, db_url, None, "", tmp_path), lambda: services.drop_mysql_database(db_url)
        prefix = services.new_redis_prefix()

        def cleanup() -> None:
            services.drop_mysql_database(db_url)
            services.drop_redis_prefix(prefix)

        return Env(backend, db_url, services.REDIS_URL, prefix, tmp_path), cleanup
    if backend == "sqlite":
        return Env(backend, f"sqlite://{tmp_path}/dl.db", None, "", tmp_path), lambda: None
    raise ValueError(backend)


@contextlib.contextmanager
def environment(backend: str, tmp_path) -> Iterator[Env]:
    env, cleanup = make_env(backend, tmp_path)
    try:
        yield env
    finally:
        env.close()
        cleanup()


@pytest.fixture(params=BACKENDS)
def env(request, tmp_path):
    with environment(request.param, tmp_path) as built:
        yield built


@pytest.fixture
def mysql_env(tmp_path):
    with environment("mysql", tmp_path) as built:
        yield built


@pytest.fixture
def sqlite_env(tmp_path):
    with environment("sqlite", tmp_path) as built:
        yield built


@pytest.fixture
def daemon(env):
    """A factory of daemons on this test's backend; every process they started is gone after."""
    from tests.helpers.daemon import Daemon

    started: list[Daemon] = []

    def make(name=None, **config):
        instance = Daemon(env, name, **config)
        started.append(instance)
        return instance

    yield make
    leaked = {}
    for instance in started:
        left = instance.close()
        if left:
            leaked[instance.sid] = left
    assert not leaked, f"processes left behind after stop: {leaked}"
