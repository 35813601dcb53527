"""The partition harness itself: a blackholed proxy makes the database go silent (reads
hang until the client's timeout, no reset), and healing it delivers what waited."""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from tests.helpers.proxy import Proxy
from tests.helpers.wait import wait_until


def connect(port: int, timeout: float = 0.5) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1", port=port, user="root", connect_timeout=timeout, read_timeout=timeout
    )


def test_a_blackholed_proxy_drops_packets_and_healing_resumes_them():
    with Proxy(("127.0.0.1", 3306)) as proxy:
        try:
            conn = connect(proxy.port)
        except pymysql.err.OperationalError as exc:
            pytest.skip(f"MariaDB unreachable: {exc}")
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchall() == ((1,),)
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as lost, conn.cursor() as cursor:
            cursor.execute("SELECT 2")
        assert lost.value.args[0] == 2013  # lost connection during query: a timeout, not a reset
        assert time.monotonic() - started >= 0.5
        with pytest.raises(pymysql.err.OperationalError):
            connect(proxy.port)  # accepted, never answered

        answered: list[object] = []
        waiting = threading.Thread(target=lambda: answered.append(connect(proxy.port, timeout=10)))
        waiting.start()  # a connection opened in the blackhole completes once it heals
        wait_until(lambda: proxy.connections == 3, what="the third connection held")
        proxy.heal()
        waiting.join(10)
        assert answered, "the held connection was not answered after healing"
        with answered[0].cursor() as cursor:
            cursor.execute("SELECT 3")
            assert cursor.fetchall() == ((3,),)
        answered[0].close()
