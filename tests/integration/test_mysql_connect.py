"""A MySQL connection made by connections.mysql_connect in PyMySQL's default TLS mode (TLS if
the server offers it, unverified) loads no CA store: with it each connection cost about 50 ms
of CPU, most of a web child's warm-up (one connection per server thread; bench/README.md)."""

from __future__ import annotations

import ssl

from dlsupervisor import config
from dlsupervisor.connections import mysql_connect

CONNECTIONS = 3


def test_a_default_connection_loads_no_ca_store(mysql_env, tmp_path, monkeypatch):
    def loads_the_store(*args, **kwargs):
        raise AssertionError("ssl.create_default_context: the CA store loaded for a connection")

    monkeypatch.setattr(ssl, "create_default_context", loads_the_store)
    path = tmp_path / "db.ini"
    path.write_text(f"[database]\nurl = {mysql_env.db_url}\n")
    db = config.load(str(path)).database
    assert not db.tls.mode  # PyMySQL's default mode, the one this is about
    for _ in range(CONNECTIONS):
        conn = mysql_connect(db)
        assert conn.ctx.verify_mode == ssl.CERT_NONE and conn.ctx.cert_store_stats()["x509_ca"] == 0
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        conn.close()
