"""The file part of a multipart/form-data request, read as it arrives.

Starlette's `UploadFile` (and FastAPI's `File`/`Form` parameters) read the whole form into a
spooled temporary file before the handler runs. Here python-multipart's streaming parser is
fed straight from `request.stream()` and the file part's bytes are handed on chunk by chunk,
so the caller decides on the first bytes and stops a bad upload at once.
"""

import unicodedata
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from ..errors import AppError

# Room for the multipart framing around the file: boundaries, part headers, a long file name.
MULTIPART_OVERHEAD_BYTES = 16 * 1024
MAX_FILENAME_CHARS = 255
# Bidirectional overrides can make "gpj.exe" read as "exe.jpg".
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def file_too_large(limit: int) -> AppError:
    return AppError(413, "file_too_large", f"The file is larger than the limit of {limit} bytes")


def sanitize_filename(raw: str) -> str:
    """The client's name without any path, control characters or leading dots ("" if none left)."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) != "Cc" and c not in _BIDI_CONTROLS)
    name = name.lstrip(".")
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        if dot and 0 < len(suffix) <= 16:
            name = stem[: MAX_FILENAME_CHARS - len(suffix) - 1] + "." + suffix
        else:
            name = name[:MAX_FILENAME_CHARS]
    return name


class MultipartUpload:
    """One file field of a multipart request; `chunks()` yields its bytes as they arrive.

    Built before the body is read: a declared `Content-Length` beyond `limit` plus the
    multipart framing is refused at once (413), and so is a body that is not multipart (415).
    While streaming, the whole body is capped the same way, whatever its parts; the file's own
    size is the caller's to check. `filename` (sanitised) is known once the first chunk has
    been yielded, or once `chunks()` is exhausted.
    """

    def __init__(self, request: Request, *, limit: int, field: str = "file") -> None:
        self.request = request
        self.limit = limit
        self.max_body = limit + MULTIPART_OVERHEAD_BYTES
        self.field = field
        self.filename = ""
        self.consumed = 0
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise file_too_large(limit)
        media_type, options = parse_options_header(request.headers.get("content-type"))
        if media_type != b"multipart/form-data" or not options.get(b"boundary"):
            raise AppError(415, "unsupported_media_type", "Send the file as multipart/form-data")
        self._boundary = options[b"boundary"]
        charset = options.get(b"charset", b"utf-8").decode("latin-1")
        self._charset = charset if charset.lower() in {"utf-8", "utf8"} else "utf-8"

    async def chunks(self) -> AsyncIterator[bytes]:
        found: list[bytes] = []
        state = _PartState(self.field)

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if state.in_file:
                found.append(data[start:end])

        try:
            parser = MultipartParser(
                self._boundary,
                {
                    "on_part_begin": state.begin,
                    "on_header_field": state.header_field,
                    "on_header_value": state.header_value,
                    "on_header_end": state.header_end,
                    "on_headers_finished": state.headers_finished,
                    "on_part_data": on_part_data,
                    "on_part_end": state.end,
                },
            )
            async for body in self.request.stream():
                self.consumed += len(body)
                if self.consumed > self.max_body:
                    raise file_too_large(self.limit)
                parser.write(body)
                if state.filename is not None and not self.filename:
                    self.filename = sanitize_filename(
                        state.filename.decode(self._charset, "replace")
                    )
                if found:
                    piece = found[0] if len(found) == 1 else b"".join(found)
                    found.clear()
                    yield piece
        except FormParserError:
            raise AppError(400, "invalid_multipart", "The multipart body is malformed") from None
        except ClientDisconnect:
            raise AppError(
                400, "upload_interrupted", "The client went away before the upload finished"
            ) from None
        if not state.done:
            if state.filename is None:
                raise RequestValidationError(
                    [{"type": "missing", "loc": ("body", self.field), "msg": "Field required"}]
                )
            raise AppError(400, "invalid_multipart", "The body ended in the middle of the file")


class _PartState:
    """Follows the parts' headers to find the first part named `field`."""

    def __init__(self, field: str) -> None:
        self.field = field.encode()
        self.in_file = False
        self.done = False
        self.filename: bytes | None = None
        self._name = bytearray()
        self._value = bytearray()
        self._disposition = b""

    def begin(self) -> None:
        self._disposition = b""

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def header_end(self) -> None:
        if bytes(self._name).lower() == b"content-disposition":
            self._disposition = bytes(self._value)
        self._name.clear()
        self._value.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == self.field and self.filename is None:
            self.filename = options.get(b"filename", b"")
            self.in_file = True

    def end(self) -> None:
        if self.in_file:
            self.in_file = False
            self.done = True
