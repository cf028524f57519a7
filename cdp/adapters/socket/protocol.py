"""The local socket of a data directory: where ``cdp serve`` answers the CLI.

DuckDB admits one process per database file for writing, and a read-only
open is refused while a writer holds the file. So while ``cdp serve`` owns a
data directory it listens on ``<data dir>/cdp.sock`` (a Unix socket, mode
0600: only the owner of the directory may connect), and CLI commands reach
the data through it (``cdp.adapters.socket.client``, ``cdp.adapters.socket.server``).

The protocol is a sequence of frames, each a 4-byte big-endian length and
that many bytes. A request is one JSON frame (``{"op": ...}``), followed by
one Arrow IPC frame for the operations that carry data (query parameters,
records to append). A reply is one JSON frame (``{"ok": true, ...}`` or
``{"ok": false, "type": ..., "message": ...}``); a query's rows follow an
``ok`` reply as Arrow IPC frames (each a complete stream of one batch), then
an empty frame, then a JSON trailer saying whether every row was sent.
Arrow keeps DuckDB's types exactly (decimals, time zones, lists, structs,
HUGEINT and UUID with ``arrow_lossless_conversion``).

Operations: ``hello`` (who answers: pid, data directory, checkpoint period),
``query`` (one read statement, see ``cdp.adapters.duckdb.guard``), ``append`` (records
validated by the client, appended through the server's group-commit writer),
``checkpoint`` (save the projections now).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow as pa

SOCKET_NAME = "cdp.sock"
PROTOCOL = 1
MAX_FRAME = 1 << 30  # one frame: a batch of rows or of records, far below this
_LENGTH = struct.Struct(">I")
# sun_path holds 108 bytes on Linux (104 on the BSDs); longer paths go through
# /proc/self/fd/N/cdp.sock, a short alias of the same directory.
_MAX_PATH = 100


class ByteReader(Protocol):
    """A binary stream to read frames from (a socket's ``makefile("rb")``)."""

    def read(self, size: int, /) -> bytes: ...


class ByteWriter(Protocol):
    """A binary stream to write frames to (a socket's ``makefile("wb")``)."""

    def write(self, data: bytes, /) -> int: ...


class ProtocolError(Exception):
    """The other side broke the framing or closed the connection mid-message."""


def socket_path(data_dir: Path) -> Path:
    """Where ``cdp serve`` listens for the CLI in ``data_dir``."""
    return data_dir / SOCKET_NAME


@contextmanager
def addressable(path: Path) -> Iterator[str]:
    """A path to bind or connect ``path`` by, short enough for a Unix socket.

    Deep data directories (pytest's temporary ones, home directories on
    network mounts) exceed ``sun_path``; on Linux the directory's open file
    descriptor gives a short alias that names the same socket file."""
    text = str(path)
    if len(text.encode()) <= _MAX_PATH:
        yield text
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        alias = f"/proc/self/fd/{directory}/{path.name}"
        if not Path(f"/proc/self/fd/{directory}").is_dir():
            raise OSError(f"socket path {text} is too long for this system")
        yield alias
    finally:
        os.close(directory)


def write_frame(stream: ByteWriter, payload: bytes) -> None:
    """One frame: length, then the bytes."""
    stream.write(_LENGTH.pack(len(payload)))
    if payload:
        stream.write(payload)


def read_frame(stream: ByteReader) -> bytes | None:
    """The next frame's bytes; ``None`` if the peer closed between frames."""
    head = _read_exactly(stream, _LENGTH.size, allow_eof=True)
    if head is None:
        return None
    (size,) = _LENGTH.unpack(head)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is over the {MAX_FRAME} byte limit")
    body = _read_exactly(stream, size, allow_eof=False)
    assert body is not None
    return body


def _read_exactly(stream: ByteReader, size: int, *, allow_eof: bool) -> bytes | None:
    chunks: list[bytes] = []
    missing = size
    while missing:
        chunk = stream.read(missing)
        if not chunk:
            if allow_eof and missing == size:
                return None
            raise ProtocolError("the connection closed in the middle of a message")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def write_json(stream: ByteWriter, message: dict[str, Any]) -> None:
    """A JSON frame."""
    write_frame(stream, orjson.dumps(message))


def read_json(stream: ByteReader) -> dict[str, Any] | None:
    """The next JSON frame (``None`` at a clean end of the connection)."""
    frame = read_frame(stream)
    if frame is None:
        return None
    message = orjson.loads(frame)
    if not isinstance(message, dict):
        raise ProtocolError("expected a JSON object")
    return message


def table_bytes(table: pa.Table | pa.RecordBatch) -> bytes:
    """A complete Arrow IPC stream holding ``table`` (schema included)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        if isinstance(table, pa.RecordBatch):
            writer.write_batch(table)
        else:
            writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def bytes_table(data: bytes) -> pa.Table:
    """The table of an Arrow IPC stream made by ``table_bytes``."""
    return pa.ipc.open_stream(pa.BufferReader(data)).read_all()


def encode_params(params: list[Any] | tuple[Any, ...] | dict[str, Any]) -> tuple[str, bytes]:
    """Query parameters as ``(kind, one-row Arrow table)``; Arrow keeps their types.

    ``ValueError`` for a value Arrow cannot type (mixed lists, huge ints)."""
    if isinstance(params, dict):
        kind, items = "named", [(str(k), v) for k, v in params.items()]
    else:
        kind, items = "positional", [(str(i), v) for i, v in enumerate(params)]
    try:
        columns = {name: pa.array([value]) for name, value in items}
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise ValueError(f"a query parameter cannot be sent to cdp serve: {error}") from None
    return kind, table_bytes(pa.table(columns))


def decode_params(kind: str, data: bytes) -> list[Any] | dict[str, Any]:
    """The parameters ``encode_params`` sent, as DuckDB binds them."""
    table = bytes_table(data)
    row = {name: table.column(name)[0].as_py() for name in table.column_names}
    if kind == "named":
        return row
    return [row[str(i)] for i in range(len(row))]
