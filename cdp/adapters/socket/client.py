"""The CLI's side of the local socket (protocol: ``cdp.adapters.socket.protocol``).

``connect(data_dir)`` answers whether ``cdp serve`` owns the directory and,
if so, gives a ``RemoteConnection``: the part of DuckDB's connection API the
read paths use (``execute(sql, params)`` returning the connection, then
``fetchall``/``fetchone``/``fetchmany``/``description``; ``close``). Rows
arrive as Arrow and are read back through an in-memory DuckDB, so every value
has the Python type the direct connection gives (``Decimal``, aware
``datetime``, lists, dicts, ``UUID``). A refused or failed statement raises
the DuckDB exception class the server reported, so callers that handle
``duckdb.Error`` behave the same on both paths.

``RemoteSink`` appends validated records through the server's writer (what
``cdp ingest`` uses beside a running server).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from cdp.adapters.socket.protocol import (
    PROTOCOL,
    ProtocolError,
    addressable,
    bytes_table,
    encode_params,
    read_frame,
    read_json,
    socket_path,
    table_bytes,
    write_frame,
    write_json,
)
from cdp.closing import Closing
from cdp.errors import LogUnavailableError
from cdp.ports.log import AppendResult, Record

CONNECT_TIMEOUT = 5.0
HELLO_TIMEOUT = 30.0


class ServerRunningError(LogUnavailableError):
    """``cdp serve`` owns the data directory; the command must go through it or wait."""

    def __init__(self, message: str, data_dir: Path, pid: int | None) -> None:
        super().__init__(message)
        self.data_dir = data_dir
        self.pid = pid


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class RemoteConnection(Closing):
    """A read connection to the database of a running ``cdp serve``.

    One socket and, on the server, one cursor: statements run in order, and a
    ``BEGIN``…``ROLLBACK`` around several reads gives them one snapshot, as
    on a direct connection. ``info`` is the server's hello (pid, data_dir,
    checkpoint_every)."""

    def __init__(self, sock: socket.socket, data_dir: Path, info: dict[str, Any]) -> None:
        self._sock = sock
        self._rfile = sock.makefile("rb")
        self._wfile = sock.makefile("wb")
        self.data_dir = data_dir
        self.info = info
        self._local = duckdb.connect()  # decodes Arrow rows into DuckDB's Python values
        self._result: duckdb.DuckDBPyConnection | None = None

    # ------------------------------------------------------------ transport
    def _request(self, message: dict[str, Any], payload: bytes | None = None) -> dict[str, Any]:
        try:
            write_json(self._wfile, message)
            if payload is not None:
                write_frame(self._wfile, payload)
            self._wfile.flush()
            reply = read_json(self._rfile)
        except (OSError, ProtocolError, orjson.JSONDecodeError) as error:
            raise self._lost(error) from None
        if reply is None:
            raise self._lost(None)
        return reply

    def _lost(self, error: BaseException | None) -> LogUnavailableError:
        why = f" ({error})" if error else ""
        return LogUnavailableError(
            f"cdp serve on {self.data_dir} closed the connection{why}; run the command again"
        )

    @staticmethod
    def _raise(reply: dict[str, Any]) -> None:
        kind = getattr(duckdb, str(reply.get("type")), None)
        error = kind if isinstance(kind, type) and issubclass(kind, duckdb.Error) else duckdb.Error
        raise error(str(reply.get("message", "the server refused the request")))

    # -------------------------------------------------- DuckDB connection API
    def execute(
        self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None
    ) -> RemoteConnection:
        """Run one read statement on the server; rows are then fetched from here."""
        self._finish()
        message: dict[str, Any] = {"op": "query", "sql": sql}
        payload = None
        if parameters is not None:
            try:
                kind, payload = encode_params(
                    dict(parameters) if isinstance(parameters, dict) else list(parameters)
                )
            except ValueError as error:
                raise duckdb.InvalidInputException(str(error)) from None
            message["params"] = kind
        reply = self._request(message, payload)
        if not reply.get("ok"):
            self._raise(reply)
        if reply.get("rows"):
            self._result = self._receive_rows()
        return self

    def _receive_rows(self) -> duckdb.DuckDBPyConnection:
        tables: list[pa.Table] = []
        try:
            while (frame := read_frame(self._rfile)) is not None and frame:
                tables.append(bytes_table(frame))
            trailer = read_json(self._rfile)
        except (OSError, ProtocolError, orjson.JSONDecodeError, pa.ArrowException) as error:
            raise self._lost(error) from None
        if trailer is None or not tables:
            raise self._lost(None)
        if not trailer.get("ok"):
            self._raise(trailer)
        table = pa.concat_tables(tables)
        names = table.column_names
        # Unique names to register, the server's (possibly repeated) names on output.
        table = table.rename_columns([f"c{i}" for i in range(len(names))])
        cursor = self._local.cursor()
        cursor.register("remote_rows", table)
        select = ", ".join(f"c{i} AS {_quote(name)}" for i, name in enumerate(names))
        return cursor.execute(f"SELECT {select} FROM remote_rows")

    def _finish(self) -> None:
        if self._result is not None:
            self._result.close()
            self._result = None

    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        """Column names and types of the last result (None after a non-query)."""
        return self._result.description if self._result is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every remaining row of the last result."""
        return self._result.fetchall() if self._result is not None else []

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row of the last result, or None."""
        return self._result.fetchone() if self._result is not None else None

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        """Up to ``size`` more rows of the last result."""
        return self._result.fetchmany(size) if self._result is not None else []

    def close(self) -> None:
        """End the session (the server closes its cursor, rolling back any transaction)."""
        self._finish()
        self._local.close()
        for closable in (self._rfile, self._wfile, self._sock):
            with contextlib.suppress(OSError):
                closable.close()

    # ------------------------------------------------------------- writing
    def append(self, records: Sequence[Record]) -> AppendResult:
        """Append validated records through the server's writer (durable on return)."""
        table = pa.table(
            {
                "data": pa.array([r.data for r in records], pa.binary()),
                "source": pa.array([r.source for r in records], pa.string()),
            }
        )
        reply = self._request({"op": "append"}, table_bytes(table))
        if not reply.get("ok"):
            raise LogUnavailableError(f"cdp serve refused the records: {reply.get('message')}")
        return AppendResult(tuple(reply["offsets"]), tuple(reply["new"]))

    def checkpoint(self) -> int:
        """Ask the server to save its projections now; the customers saved."""
        reply = self._request({"op": "checkpoint"})
        if not reply.get("ok"):
            raise LogUnavailableError(f"cdp serve could not checkpoint: {reply.get('message')}")
        return int(reply.get("customers", 0))


def connect(data_dir: Path) -> RemoteConnection | None:
    """A connection to the ``cdp serve`` that owns ``data_dir``; None if none answers."""
    path = socket_path(data_dir)
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        with addressable(path) as address:
            sock.connect(address)
    except OSError:  # a socket left by a killed server: nobody answers
        sock.close()
        return None
    connection = RemoteConnection(sock, data_dir, {})
    try:
        # The zone a direct connection of this process would use, so that
        # times are read (and truncated to days) as they would be directly.
        zone = connection._local.execute("SELECT current_setting('TimeZone')").fetchall()
        hello = {"op": "hello", "protocol": PROTOCOL, "timezone": str(zone[0][0])}
        sock.settimeout(HELLO_TIMEOUT)  # a process that accepts but never answers
        connection.info = connection._request(hello)
        sock.settimeout(None)  # a query may take as long as it takes
    except LogUnavailableError:
        connection.close()
        return None
    return connection


def serving(data_dir: Path) -> dict[str, Any] | None:
    """The hello of the ``cdp serve`` answering on ``data_dir``'s socket (pid,
    checkpoint period), or None when no server answers."""
    connection = connect(data_dir)
    if connection is None:
        return None
    connection.close()
    return connection.info
