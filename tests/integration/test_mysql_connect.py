"""A MySQL connection made by connections.mysql_connect in PyMySQL's default TLS mode (TLS if
the server offers it, unverified) loads no CA store: with it each connection cost about 50 ms
of CPU, most of a web child's warm-up (one connection per server thread)."""

from __future__ import annotations

import ssl
import time

from dlsupervisor import config
from dlsupervisor.connections import mysql_connect

CONNECTIONS = 5
CPU_EACH = 0.02  # seconds; with the CA store loaded a connection took 0.05-0.1 here


def test_a_default_connection_loads_no_ca_store_and_costs_little_cpu(mysql_env, tmp_path):
    path = tmp_path / "db.ini"
    path.write_text(f"[database]\nurl = {mysql_env.db_url}\n")
    db = config.load(str(path)).database
    assert not db.tls.mode  # PyMySQL's default mode, the one this is about
    mysql_connect(db).close()  # imports and first-use costs out of the measurement
    began = time.process_time()
    for _ in range(CONNECTIONS):
        conn = mysql_connect(db)
        assert conn.ctx.verify_mode == ssl.CERT_NONE and conn.ctx.cert_store_stats()["x509_ca"] == 0
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        conn.close()
    each = (time.process_time() - began) / CONNECTIONS
    assert each < CPU_EACH, f"{each * 1000:.1f} ms of CPU a connection: is a CA store loaded again?"
