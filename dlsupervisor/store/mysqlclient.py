"""The MySQL store on mysqlclient (MySQLdb, the C client): mysql.py's, its driver's parts changed.

Chosen by [database] driver (config.mysql_driver: `auto` takes it when installed).
It parses the server's packets in C: in the worker's loop, where a PyMySQL claim's
read-back (`SELECT *`, 15 column descriptors) was the largest share of its Python
time, an item costs a fifth less CPU (bench/README.md, Drivers).  The statements,
transactions and the classification of errors are mysql.py's; what differs is the
connection and the multi-statement query, whose option switches cannot go out in
one write with the C client's API: three round trips instead of one, still cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import MySQLdb
from MySQLdb.constants import CLIENT
from MySQLdb.cursors import DictCursor

from dlsupervisor.connections import mysqlclient_connect
from dlsupervisor.store.mysql import MySQLStore, Result, _args, _sql, classify
from dlsupervisor.store.sql import Failure

# mysql_set_server_option's argument: MYSQL_OPTION_MULTI_STATEMENTS_ON / _OFF.
_MULTI_ON, _MULTI_OFF = 0, 1


class MySQLClientStore(MySQLStore):
    errors = MySQLdb

    def _connect(self) -> Any:
        """mysqlclient always asks for multiple statements when it connects: switched off at
        once, so that here too only `_multi_statement`'s query can stack statements."""
        conn = mysqlclient_connect(  # the url's host and credentials (connections.py)
            self._db,
            charset="utf8mb4",
            autocommit=True,
            client_flag=CLIENT.FOUND_ROWS,
            connect_timeout=math.ceil(min(self._timeout, 10)),
            read_timeout=math.ceil(self._timeout),
            write_timeout=math.ceil(self._timeout),
            cursorclass=DictCursor,
        )
        try:
            conn.set_server_option(_MULTI_OFF)
        except BaseException:
            conn.close()
            raise
        return conn

    def _multi_statement(self, cursor: Any, sql: str, args: Sequence[Any]) -> list[Result]:
        """mysql.py's, through the C client's calls: multiple statements switched on for
        this one query and off after it, every result read (the server stops at the first
        statement that fails).  Any failure other than a statement refused leaves the
        option's state unknown: the connection is closed, as an outage would close it."""
        conn = cursor.connection
        switched_off = False
        refused: MySQLdb.MySQLError | None = None
        results: list[Result] = []
        try:
            conn.set_server_option(_MULTI_ON)
            try:
                cursor.execute(_sql(sql), _args(args))
                while True:
                    results.append(Result(cursor.rowcount, cursor.lastrowid or 0, list(cursor.fetchall())))
                    if not cursor.nextset():
                        break
            except MySQLdb.MySQLError as exc:
                if classify(exc, MySQLdb) is Failure.OUTAGE:
                    raise
                refused = exc
            conn.set_server_option(_MULTI_OFF)
            switched_off = True
        finally:
            if not switched_off:
                self.close()
        if refused is not None:
            raise refused
        return results
