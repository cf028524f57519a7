"""``cdp serve``'s side of the local socket (protocol: ``cdp.adapters.socket.protocol``).

``LocalServer`` listens on ``<data dir>/cdp.sock`` while the collector runs
in embedded mode. Each client connection gets a thread and its own DuckDB
cursor of the engine's database (obtained once on the writer's thread, as the
read API's cursors are): queries run there, beside the writer, never on the
event loop and never queued behind appends. A cursor sees what is committed:
the log up to the last append, the projections as of the last checkpoint.

Security: the socket is created under umask 0177 and chmod 0600, so only the
directory's owner connects (and on Linux the peer's uid is checked too);
every statement passes ``cdp.adapters.duckdb.guard`` first; on the cursor, Python
replacement scans are off. Appends go through the group-commit writer, the
same door as HTTP, so a record is acknowledged only once it is durable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import struct
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from cdp.adapters.duckdb import guard as read_guard
from cdp.adapters.socket.protocol import (
    PROTOCOL,
    ByteReader,
    ByteWriter,
    ProtocolError,
    addressable,
    bytes_table,
    decode_params,
    read_frame,
    read_json,
    socket_path,
    table_bytes,
    write_frame,
    write_json,
)
from cdp.ports.log import AppendResult, Record
from cdp.runtime.writer import Backpressure, GroupCommitWriter
from schemas import decode_stored

log = logging.getLogger(__name__)
BATCH_ROWS = 65_536
_ZONE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-/")


def _failure(error: BaseException) -> dict[str, Any]:
    """A reply for an error: DuckDB's exception class name is kept so that the
    client raises the same type the direct connection would."""
    kind = type(error).__name__ if isinstance(error, duckdb.Error) else "Error"
    if isinstance(error, read_guard.Refused):
        kind = "PermissionException"
    return {"ok": False, "type": kind, "message": str(error).strip()}


def _engine_cursor(engine: Any) -> duckdb.DuckDBPyConnection:
    """On the writer's thread: a cursor of the engine's database."""
    cursor: duckdb.DuckDBPyConnection = engine.con.cursor()
    return cursor


class _Session:
    """One client connection: its cursor and its requests, in order."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.cursor: duckdb.DuckDBPyConnection | None = None
        self.zone: str | None = None

    def open_cursor(self) -> duckdb.DuckDBPyConnection:
        if self.cursor is None:
            cursor = self.server.base_cursor().cursor()
            # Session settings: they do not reach the writer's connection.
            cursor.execute("SET SESSION python_enable_replacements = false")
            cursor.execute("SET SESSION arrow_lossless_conversion = true")
            if self.zone:
                cursor.execute(f"SET SESSION TimeZone = '{self.zone}'")
            self.cursor = cursor
            self.server.track(cursor, True)
        return self.cursor

    def drop_cursor(self) -> None:
        if self.cursor is not None:
            self.server.track(self.cursor, False)
            with contextlib.suppress(duckdb.Error):
                self.cursor.close()
            self.cursor = None

    def hello(self, request: dict[str, Any]) -> dict[str, Any]:
        zone = request.get("timezone")
        if isinstance(zone, str) and zone and set(zone) <= _ZONE_CHARS:
            self.zone = zone  # the CLI's zone, so times read as they would directly
        return {
            "ok": True,
            "protocol": PROTOCOL,
            "pid": os.getpid(),
            "data_dir": str(self.server.data_dir),
            "checkpoint_every": self.server.writer.checkpoint_every,
        }

    def query(self, request: dict[str, Any], rfile: ByteReader, wfile: ByteWriter) -> None:
        params: list[Any] | dict[str, Any] | None = None
        if request.get("params") in ("named", "positional"):
            frame = read_frame(rfile)
            if frame is None:
                raise ProtocolError("query parameters missing")
            params = decode_params(str(request["params"]), frame)
        sql = str(request.get("sql", ""))
        try:
            cursor = self.open_cursor()
            kind = read_guard.check(cursor, sql)
            if kind is read_guard.Kind.TRANSACTION:
                cursor.execute(sql)
                write_json(wfile, {"ok": True, "rows": False})
                return
            reader = cursor.sql(sql, params=params).to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as error:
            write_json(wfile, _failure(error))
            return
        write_json(wfile, {"ok": True, "rows": True})
        failure: dict[str, Any] = {"ok": True}
        sent_schema = False
        batches = iter(reader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            # A run-time error mid-way (pyarrow raises DuckDB's as OSError);
            # errors writing to the client are not caught here: it is gone.
            except (duckdb.Error, pa.ArrowException, OSError) as error:
                failure = _failure(error)
                self.drop_cursor()  # its result is unfinished; the next query gets a fresh one
                break
            write_frame(wfile, table_bytes(batch))
            sent_schema = True
        if not sent_schema:
            write_frame(wfile, table_bytes(reader.schema.empty_table()))
        write_frame(wfile, b"")
        write_json(wfile, failure)

    def append(self, rfile: ByteReader) -> dict[str, Any]:
        frame = read_frame(rfile)
        if frame is None:
            raise ProtocolError("records missing")
        table = bytes_table(frame)
        records: list[Record] = []
        for index, (data, source) in enumerate(
            zip(table.column("data").to_pylist(), table.column("source").to_pylist(), strict=True)
        ):
            try:
                records.append(Record(decode_stored(data), data, source))
            except Exception as error:  # the client validated; say which record if not
                return {"ok": False, "type": "Error", "message": f"record {index}: {error}"}
        result = self.server.append(records)
        return {"ok": True, "offsets": list(result.offsets), "new": list(result.new)}

    def checkpoint(self) -> dict[str, Any]:
        saved = self.server.writer.call(lambda engine: engine.checkpoint()).result()
        return {"ok": True, "customers": saved}


class _Handler(socketserver.StreamRequestHandler):
    server: _UnixServer
    wbufsize = 1 << 16

    def handle(self) -> None:
        session = _Session(self.server.owner)
        self.server.owner.track_client(self.request, True)
        try:
            while True:
                request = read_json(self.rfile)
                if request is None:
                    return
                op = request.get("op")
                if op == "hello":
                    write_json(self.wfile, session.hello(request))
                elif op == "query":
                    session.query(request, self.rfile, self.wfile)
                elif op in ("append", "checkpoint"):
                    write_json(self.wfile, self._write(session, op))
                else:
                    write_json(self.wfile, {"ok": False, "type": "Error", "message": f"op {op}?"})
                self.wfile.flush()
        except (OSError, ProtocolError, orjson.JSONDecodeError, pa.ArrowException) as error:
            log.info("local socket client dropped: %s", error)
        except Exception:  # one bad connection must never take the server down
            log.exception("local socket request failed")
        finally:
            session.drop_cursor()
            self.server.owner.track_client(self.request, False)

    def _write(self, session: _Session, op: str) -> dict[str, Any]:
        """Run a write op; its failure is the reply (the log is safe either way)."""
        try:
            return session.append(self.rfile) if op == "append" else session.checkpoint()
        except (OSError, ProtocolError):
            raise
        except Exception as error:
            log.exception("local socket %s failed", op)
            return {"ok": False, "type": "Error", "message": f"{type(error).__name__}: {error}"}

    def finish(self) -> None:
        # The client may be gone (or shut down by ``LocalServer.close``): the
        # last buffered bytes have nowhere to go, which is not an error.
        with contextlib.suppress(OSError):
            super().finish()


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    owner: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("local socket connection failed")

    def server_bind(self) -> None:
        # Created 0600 from the start (umask), then chmod: no moment where
        # another user could connect.
        previous = os.umask(0o177)
        try:
            with addressable(Path(str(self.server_address))) as address:
                self.socket.bind(address)
        finally:
            os.umask(previous)
        os.chmod(str(self.server_address), 0o600)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        peer_cred = getattr(socket, "SO_PEERCRED", None)
        if peer_cred is None:
            return True
        creds = request.getsockopt(socket.SOL_SOCKET, peer_cred, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        return bool(uid in (os.getuid(), 0))


def answers(path: Path) -> bool:
    """Whether something accepts connections on the socket at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2)
        with addressable(path) as address:
            probe.connect(address)
    except OSError:
        return False
    finally:
        probe.close()
    return True


class LocalServer:
    """The data directory's local socket, served on a thread of ``cdp serve``.

    ``writer`` must own the embedded ``Engine`` (not a Kafka log)."""

    def __init__(self, data_dir: Path, writer: GroupCommitWriter[Any]) -> None:
        self.data_dir = data_dir
        self.path = socket_path(data_dir)
        self.writer = writer
        self._server: _UnixServer | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None
        self._base: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._cursors: set[duckdb.DuckDBPyConnection] = set()
        self._clients: set[socket.socket] = set()

    def start(self) -> bool:
        """Listen; False (and a warning) when the socket cannot be made."""
        if self.path.exists() or self.path.is_symlink():
            if answers(self.path):  # never steal a socket somebody answers on
                log.warning("%s answers already; the CLI will not reach this server", self.path)
                return False
            self.path.unlink()  # left by a server that was killed
        try:
            server = _UnixServer(str(self.path), _Handler, bind_and_activate=True)
        except OSError as error:
            log.warning("cannot listen on %s (%s); CLI reads will be refused", self.path, error)
            return False
        server.owner = self
        self._server = server
        self._inode = os.stat(self.path).st_ino
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="cdp-local-socket"
        )
        self._thread.daemon = True
        self._thread.start()
        return True

    def close(self) -> None:
        """Stop listening, interrupt running queries, remove the socket file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        try:  # only our own socket: a newer server may have replaced it
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        except FileNotFoundError:
            pass
        with self._lock:
            cursors, clients = list(self._cursors), list(self._clients)
        for cursor in cursors:  # a long query stops now, not when it would end
            with contextlib.suppress(duckdb.Error):
                cursor.interrupt()
        for client in clients:  # an idle client's thread wakes up to EOF
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if not self._cursors and not self._clients:
                    break
            time.sleep(0.05)
        with self._lock:
            if self._base is not None:
                self._base.close()
                self._base = None

    def base_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of the engine's database, made once on the writer's thread."""
        with self._lock:
            if self._base is None:
                self._base = self.writer.call(_engine_cursor).result()
            return self._base

    def track(self, cursor: duckdb.DuckDBPyConnection, alive: bool) -> None:
        """Remember the cursors in use, to interrupt them at shutdown."""
        with self._lock:
            (self._cursors.add if alive else self._cursors.discard)(cursor)

    def track_client(self, client: socket.socket, alive: bool) -> None:
        """Remember the open client connections, to end them at shutdown."""
        with self._lock:
            (self._clients.add if alive else self._clients.discard)(client)

    def append(self, records: list[Record]) -> AppendResult:
        """Append through the writer; wait out backpressure like a bulk import."""
        while True:
            try:
                return self.writer.submit(records).result()
            except Backpressure as error:
                time.sleep(error.retry_after)


def serve_local(
    data_dir: Path, writer: GroupCommitWriter[Any], embedded: bool = True
) -> LocalServer | None:
    """Start the local socket of an embedded ``cdp serve`` whose started ``writer``
    owns the ``Engine``; None in Kafka mode (``embedded`` false: no database
    here) and, with a logged warning, when the socket cannot be made."""
    if not embedded:
        return None
    server = LocalServer(data_dir, writer)
    return server if server.start() else None
