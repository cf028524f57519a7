"""Form request bodies (urlencoded, multipart, JSON) → posted fields: ``parse_body``."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_to_bytes

import orjson
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from cdp.services.collector import Problem, RequestRejected

Fields = dict[str, str | list[str]]
"""Posted form fields: one value, or a list when the field was posted more than once."""

MAX_FIELDS: Final = 1_000
URLENCODED: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"
JSON: Final = "application/json"
_ALLOWED_TRANSFER_ENCODINGS: Final = (b"7bit", b"8bit", b"binary")
_FILENAME_PARAM: Final = re.compile(rb";\s*filename\*?\s*=", re.IGNORECASE)


def parse_body(content_type: str, body: bytes) -> Fields:
    """The posted fields of a form body; ``RequestRejected`` naming the field if malformed.

    - ``application/x-www-form-urlencoded``: ``+`` and ``%XX`` decoded, blank
      values kept; text is UTF-8 unless the Content-Type gives a ``charset``
      (a Shift_JIS site may say so). Bytes that do not decode are an error
      naming the field, never replaced with mojibake.
    - ``multipart/form-data``: text parts only. A file part (any ``filename``
      parameter, or a part whose Content-Type is not text/plain) is refused:
      a CDP must not receive uploads, and customer files are no profile data.
    - ``application/json``: an object of strings, numbers, booleans, nulls or
      lists of them; numbers become their JSON text, booleans ``"true"`` /
      ``"false"``, null ``""``. A nested object is an error naming its field.

    A field posted more than once becomes a list in posting order. At most
    ``MAX_FIELDS`` fields; the route bounds the body size.
    """
    if not content_type.isascii():
        raise RequestRejected([Problem(None, "", "the Content-Type header is not ASCII")], 415)
    media, params = parse_options_header(content_type)
    media_type = media.decode("latin-1")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    if media_type == URLENCODED:
        pairs = _urlencoded(body, _codec(charset))
    elif media_type == MULTIPART:
        pairs = _multipart(body, params.get(b"boundary"))
    elif media_type == JSON:
        return _json(body)
    else:
        shown = media_type or "(none)"
        raise RequestRejected(
            [
                Problem(
                    None,
                    "",
                    f"Content-Type {shown} is not supported; use {URLENCODED}, {MULTIPART} or {JSON}",
                )
            ],
            415,
        )
    return _collect(pairs)


def _codec(charset: str) -> str:
    try:
        return codecs.lookup(charset).name
    except LookupError:
        raise RequestRejected(
            [Problem(None, "", f"charset {charset!r} is not supported; send UTF-8")], 415
        ) from None


def _decode(data: bytes, codec: str, name: str | None) -> str:
    """``data`` as text; ``RequestRejected`` naming the field (or its name) if it does not decode."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        if name is None:
            shown = data.decode(codec, errors="replace")
            where, what = shown, "the field name"
        else:
            where, what = name, "the value"
        raise RequestRejected(
            [
                Problem(
                    None,
                    where,
                    f"{what} is not valid {codec} text; send UTF-8 "
                    '(accept-charset="UTF-8" on the form)',
                )
            ]
        ) from None


def _too_many() -> RequestRejected:
    return RequestRejected([Problem(None, "", f"more than {MAX_FIELDS} form fields")])


def _urlencoded(body: bytes, codec: str) -> list[tuple[str, str]]:
    # By hand rather than parse_qs: it decodes with one encoding for the whole
    # body, so an undecodable byte could not be reported with its field name.
    pairs: list[tuple[str, str]] = []
    for piece in body.split(b"&"):
        if not piece:
            continue
        if len(pairs) == MAX_FIELDS:
            raise _too_many()
        raw_name, _, raw_value = piece.partition(b"=")
        name = _decode(unquote_to_bytes(raw_name.replace(b"+", b" ")), codec, None)
        value = _decode(unquote_to_bytes(raw_value.replace(b"+", b" ")), codec, name)
        pairs.append((name, value))
    return pairs


@dataclass(slots=True)
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    data: list[bytes] = field(default_factory=list)


def _multipart(body: bytes, boundary: bytes | None) -> list[tuple[str, str]]:
    if not boundary:
        raise RequestRejected([Problem(None, "", f"{MULTIPART} needs a boundary parameter")])
    parts: list[_Part] = []
    header_name: list[bytes] = []
    header_value: list[bytes] = []

    def on_part_begin() -> None:
        if len(parts) == MAX_FIELDS:
            raise _too_many()
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.append(data[start:end])

    def on_header_end() -> None:
        parts[-1].headers[b"".join(header_name).strip().lower()] = b"".join(header_value)
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.append(data[start:end])

    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_part_data": on_part_data,
            },
        )
        parser.write(body)
    except FormParserError as error:
        raise RequestRejected(
            [Problem(None, "", f"body is not valid {MULTIPART} ({error})")]
        ) from None
    if parser.state != MultipartState.END:
        raise RequestRejected(
            [Problem(None, "", f"{MULTIPART} body is truncated: no closing boundary")]
        )
    return [_part_field(part, index) for index, part in enumerate(parts)]


def _part_field(part: _Part, index: int) -> tuple[str, str]:
    disposition = part.headers.get(b"content-disposition", b"")
    kind, options = parse_options_header(disposition)
    raw_name = options.get(b"name")
    if kind != b"form-data" or not raw_name:
        raise RequestRejected(
            [Problem(None, "", f"part {index} has no Content-Disposition: form-data name")]
        )
    name = _decode(raw_name, "utf-8", None)
    media, params = parse_options_header(part.headers.get(b"content-type"))
    if _FILENAME_PARAM.search(disposition) or media not in (b"", b"text/plain"):
        raise RequestRejected(
            [
                Problem(
                    None,
                    name,
                    "is a file upload; forms may post text fields only "
                    "(remove the file input from the form)",
                )
            ]
        )
    encoding = part.headers.get(b"content-transfer-encoding", b"binary").strip().lower()
    if encoding not in _ALLOWED_TRANSFER_ENCODINGS:
        raise RequestRejected(
            [
                Problem(
                    None, name, f"Content-Transfer-Encoding {encoding.decode()!r} is not supported"
                )
            ]
        )
    codec = _codec(params.get(b"charset", b"utf-8").decode("latin-1"))
    return name, _decode(b"".join(part.data), codec, name)


def _json(body: bytes) -> Fields:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestRejected([Problem(None, "", f"body is not valid JSON ({error})")]) from None
    if not isinstance(document, dict):
        raise RequestRejected([Problem(None, "", "body must be a JSON object of form fields")])
    if len(document) > MAX_FIELDS:
        raise _too_many()
    out: Fields = {}
    problems: list[Problem] = []
    for name, value in document.items():
        if not name:
            problems.append(Problem(None, "", "a field has no name"))
        elif isinstance(value, list):
            out[name] = [
                _json_scalar(item, f"{name}[{i}]", problems) for i, item in enumerate(value)
            ]
        else:
            out[name] = _json_scalar(value, name, problems)
    if problems:
        raise RequestRejected(problems)
    return out


def _json_scalar(value: Any, where: str, problems: list[Problem]) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return orjson.dumps(value).decode()
    problems.append(
        Problem(
            None,
            where,
            f"a {'list' if isinstance(value, list) else 'nested object'} is not a form field "
            "value; send strings, numbers, booleans or lists of them",
        )
    )
    return ""


def _collect(pairs: list[tuple[str, str]]) -> Fields:
    out: Fields = {}
    for name, value in pairs:
        if not name:
            raise RequestRejected([Problem(None, "", "a field has no name")])
        seen = out.get(name)
        if seen is None:
            out[name] = value
        elif isinstance(seen, list):
            seen.append(value)
        else:
            out[name] = [seen, value]
    return out


__all__ = ["JSON", "MAX_FIELDS", "MULTIPART", "URLENCODED", "Fields", "parse_body"]
