"""Fixtures: every test gets its own database and Redis key prefix, on each backend."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator

import psutil
import pytest

from tests.helpers import services
from tests.helpers.env import Env

# mysql: MariaDB + Redis (production).  mysql-polling: MariaDB alone, so the queue is the
# database polled and the election is GET_LOCK.  sqlite: the embedded default, one file,
# polled queue, file-lock election.  DLSUPERVISOR_TEST_BACKENDS=sqlite (comma-separated)
# runs only those: .ci/run's extra Pythons need no server.  mysql and mysql-polling use PyMySQL;
# mysqlclient is mysql on the other driver (MariaDB + Redis, the store on mysqlclient), for the
# modules marked `both_drivers` only (the behaviour suites of the claim protocol, the store,
# reliability and outages): the rest does not touch what differs between the drivers.
ALL_BACKENDS = ("mysql", "mysql-polling", "sqlite", "mysqlclient")
MYSQL_BACKENDS = ("mysql", "mysqlclient")  # the mysql_env fixture's: MariaDB + Redis on each driver
DRIVERS = {"mysql": "pymysql", "mysql-polling": "pymysql", "mysqlclient": "mysqlclient"}


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


def pytest_collection_modifyitems(config, items):
    """The mysqlclient backend's cases run in the modules marked `both_drivers` only."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        other = "mysqlclient" in (params.get("env"), params.get("mysql_env"))
        (dropped if other and item.get_closest_marker("both_drivers") is None else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def require_driver(driver: str) -> None:
    """mysqlclient not installed: skipped, or a failure under CI (it is in the test extra)."""
    if driver == "mysqlclient" and importlib.util.find_spec("MySQLdb") is None:
        if os.environ.get("CI"):
            pytest.fail("mysqlclient is not installed (the test extra has it)")
        pytest.skip("mysqlclient is not installed")


def make_env(backend: str, tmp_path) -> tuple[Env, callable]:
    if backend not in BACKENDS:
        pytest.skip(f"backend {backend} not selected (DLSUPERVISOR_TEST_BACKENDS)")
    if backend in ("mysql", "mysql-polling", "mysqlclient"):
        require_driver(DRIVERS[backend])
        db_url = services.create_mysql_database()
        if backend == "mysql-polling":
            return Env(backend, db_url, None, "", tmp_path), lambda: services.drop_mysql_database(db_url)
        prefix = services.new_redis_prefix()

        def cleanup() -> None:
            services.drop_mysql_database(db_url)
            services.drop_redis_prefix(prefix)

        env = Env(backend, db_url, services.REDIS_URL, prefix, tmp_path, driver=DRIVERS[backend])
        return env, cleanup
    if backend == "sqlite":
        return Env(backend, f"sqlite://{tmp_path}/dl.db", None, "", tmp_path), lambda: None
    raise ValueError(backend)


@contextlib.contextmanager
def environment(backend: str, tmp_path) -> Iterator[Env]:
    env, cleanup = make_env(backend, tmp_path)
    try:
        if backend in DRIVERS:  # the driver asked for is the one the store uses
            wanted = "MySQLClientStore" if DRIVERS[backend] == "mysqlclient" else "MySQLStore"
            assert type(env.store).__name__ == wanted, f"{backend}: the store is {type(env.store).__name__}"
        yield env
    finally:
        env.close()
        cleanup()


@pytest.fixture(params=BACKENDS)
def env(request, tmp_path):
    with environment(request.param, tmp_path) as built:
        yield built


@pytest.fixture(params=MYSQL_BACKENDS)
def mysql_env(request, tmp_path):
    with environment(request.param, tmp_path) as built:
        yield built


@pytest.fixture(params=[DRIVERS[b] for b in MYSQL_BACKENDS])
def driver(request):
    """[database] driver, each in turn, for tests that set up their own MariaDB (chaos, outages);
    mysqlclient only in the modules marked `both_drivers`, and only where it is selected."""
    if request.node.get_closest_marker("both_drivers") is None and request.param != "pymysql":
        pytest.skip("mysqlclient: for the modules marked both_drivers")
    if request.param == "mysqlclient" and "mysqlclient" not in BACKENDS:
        pytest.skip("backend mysqlclient not selected (DLSUPERVISOR_TEST_BACKENDS)")
    require_driver(request.param)
    return request.param


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
