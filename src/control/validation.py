"""Request input checking: bodies and query strings against small declarative schemas.

A resource declares its inputs as ``{name: Field(...)}``; :func:`parse_object` and
:func:`parse_query` return clean, typed values or raise one 400 whose ``validationErrors`` names
every bad field (unknown fields, missing ones, wrong types, out-of-range values). The same
declarations produce the OpenAPI schemas (``Field.schema``), so the document cannot drift from
what the code accepts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import falcon
import falcon.asgi
import msgpack

from control import jsonbody, msgpackbody
from control.errors import ApiError, bad_request, human_size
from control.media import JSON, MSGPACK, MSGPACK_TYPES
from dispatch.campaigns.model import text_problem
from dispatch.campaigns.service import off_loop_if
from dispatch.store.base import LIMIT_EXCEEDED_MESSAGE

FieldType = Literal["string", "integer", "number", "boolean", "datetime", "array", "object"]


@dataclasses.dataclass(frozen=True)
class Field:
    type: FieldType
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    items: Field | None = None  # element type of an array
    nullable: bool = False
    default: Any = None
    too_large: str | None = None  # message when above ``maximum`` (the documented wording)
    pattern: str | None = None  # a regular expression the string must contain a match of
    pattern_message: str = "Has an invalid format"

    def schema(self) -> dict[str, Any]:
        """The OpenAPI 3.0 schema of this field."""
        out: dict[str, Any]
        if self.type == "datetime":
            out = {"type": "string", "format": "date-time"}
        else:
            out = {"type": self.type}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.min_length is not None:
            out["minItems" if self.type == "array" else "minLength"] = self.min_length
        if self.max_length is not None:
            out["maxItems" if self.type == "array" else "maxLength"] = self.max_length
        if self.items is not None:
            out["items"] = self.items.schema()
        if self.nullable:
            out["nullable"] = True
        if self.description:
            out["description"] = self.description
        if self.default is not None:
            out["default"] = self.default
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out


Schema = Mapping[str, Field]


def object_schema(fields: Schema) -> dict[str, Any]:
    """OpenAPI schema of a request body made of ``fields`` (unknown members rejected)."""
    required = [name for name, f in fields.items() if f.required]
    out: dict[str, Any] = {
        "type": "object",
        "properties": {name: f.schema() for name, f in fields.items()},
        "additionalProperties": False,
    }
    if required:
        out["required"] = required
    return out


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _parse_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise _Invalid("Must be an ISO 8601 date-time") from None
    if value.tzinfo is None or value.utcoffset() is None:
        # A time without an offset is ambiguous (a UI's local time read as UTC would schedule
        # hours off): refused, as RFC 3339's date-time requires the offset.
        raise _Invalid("Must include a time zone offset (e.g. Z or +02:00)")
    return value


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = int(sys.float_info.max)
# An integer inside an object (a message's variables) is kept as msgpack keeps it (the store
# packs variables with msgpack): a JSON integer beyond this range was a 500 at the store.
_NESTED_INT_MIN, _NESTED_INT_MAX = -(2**63), 2**64 - 1


def _nested_problem(value: Any) -> str | None:
    """``text_problem`` of the first bad string (key or value) anywhere inside ``value``, or
    of an integer out of the range a store keeps."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            error = text_problem(item)
            if error is not None:
                return error
        elif isinstance(item, int):
            if not _NESTED_INT_MIN <= item <= _NESTED_INT_MAX:
                return f"Integers must be between {_NESTED_INT_MIN} and {_NESTED_INT_MAX}"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _check(field: Field, value: Any) -> Any:
    """The clean value, or raise _Invalid with a field message."""
    if value is None:
        if field.nullable:
            return None
        raise _Invalid("Must not be null")
    kind = field.type
    if kind == "string" or kind == "datetime":
        if not isinstance(value, str):
            raise _Invalid("Must be a string")
        error = text_problem(value)
        if error is not None:
            raise _Invalid(error)
        if kind == "datetime":
            return _parse_datetime(value)
        if field.enum is not None and value not in field.enum:
            raise _Invalid(f"Must be one of: {', '.join(field.enum)}")
        if field.min_length is not None and len(value) < field.min_length:
            raise _Invalid(f"Must be at least {field.min_length} characters")
        if field.max_length is not None and len(value) > field.max_length:
            raise _Invalid(f"Must be at most {field.max_length} characters")
        if field.pattern is not None and re.search(field.pattern, value) is None:
            raise _Invalid(field.pattern_message)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _Invalid("Must be a boolean")
        return value
    if kind in ("integer", "number"):
        ok = isinstance(value, int) if kind == "integer" else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            raise _Invalid("Must be an integer" if kind == "integer" else "Must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Invalid("Must be a finite number")
        # JSON integers are unbounded; the stores hold 64-bit integers and doubles.
        if kind == "integer" and not _INT64_MIN <= value <= _INT64_MAX:
            raise _Invalid(f"Must be between {_INT64_MIN} and {_INT64_MAX}")
        if kind == "number" and isinstance(value, int) and not -_FLOAT_MAX <= value <= _FLOAT_MAX:
            raise _Invalid("Must be a finite number")
        if field.minimum is not None and value < field.minimum:
            raise _Invalid(f"Must be at least {_num(field.minimum)}")
        if field.maximum is not None and value > field.maximum:
            raise _Invalid(field.too_large or f"Must be at most {_num(field.maximum)}")
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise _Invalid("Must be an array")
        if field.min_length is not None and len(value) < field.min_length:
            raise _Invalid(f"Must have at least {field.min_length} items")
        if field.max_length is not None and len(value) > field.max_length:
            raise _Invalid(f"Must have at most {field.max_length} items")
        assert field.items is not None
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_check(field.items, item))
            except _Invalid as exc:
                raise _Invalid(f"Item {i}: {exc.message}") from None
        return out
    if kind == "object":
        if not isinstance(value, dict):
            raise _Invalid("Must be an object")
        error = _nested_problem(value)
        if error is not None:
            raise _Invalid(error)
        return value
    raise AssertionError(kind)


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


def parse_object(data: Any, fields: Schema, *, where: str = "body") -> dict[str, Any]:
    """Check a decoded body against ``fields``; absent optional fields are left out."""
    if not isinstance(data, dict):
        raise bad_request("Request body must be an object", {where: "Expected an object"})
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name in data:
        if name not in fields:
            errors[str(name)] = "Unknown field"
    for name, field in fields.items():
        if name not in data:
            if field.required:
                errors[name] = "Field is required"
            continue
        try:
            clean[name] = _check(field, data[name])
        except _Invalid as exc:
            errors[name] = exc.message
    if errors:
        raise bad_request("Validation failed", errors)
    return clean


def _from_text(field: Field, text: str) -> Any:
    kind = field.type
    if kind == "integer":
        try:
            return _check(field, int(text, 10))
        except ValueError:
            raise _Invalid("Must be an integer") from None
    if kind == "number":
        try:
            return _check(field, float(text))
        except ValueError:
            raise _Invalid("Must be a number") from None
    if kind == "boolean":
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise _Invalid("Must be true or false")
    return _check(field, text)


#: Fields that must hold something other than blanks.
NOT_BLANK = r"\S"
#: A phone number as the API takes it: 10-15 digits, optionally starting with + (doc 001).
PHONE_PATTERN = r"^\+?[1-9][0-9]{9,14}$"
PHONE_MESSAGE = "Phone number must be 10-15 digits"

#: Offsets and keyset cursors: bounded so no value overflows the store's 64-bit integers.
MAX_POSITION = 2**53

#: The page size of every list: default 50, above 200 the product's own message (doc 000).
LIMIT = Field("integer", minimum=1, maximum=200, too_large=LIMIT_EXCEEDED_MESSAGE,
              description="Page size, default 50, at most 200")


def parse_query(req: falcon.Request, fields: Schema) -> dict[str, Any]:
    """Typed query parameters; arrays accept repeats and commas (``status=New,Done``).

    When only ``limit`` is wrong with the product's own wording, the whole error is that
    message (``"The limit parameter exceeds the allowed maximum"``), as the UI expects."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name in req.params:
        if name not in fields:
            errors[name] = "Unknown parameter"
    for name, field in fields.items():
        raw = req.params.get(name)
        if raw is None:
            if field.required:
                errors[name] = "Parameter is required"
            elif field.default is not None:
                clean[name] = field.default
            continue
        values = raw if isinstance(raw, list) else [raw]
        try:
            if field.type == "array":
                assert field.items is not None
                parts = [p.strip() for v in values for p in v.split(",") if p.strip()]
                clean[name] = [_from_text(field.items, p) for p in parts]
            else:
                if len(values) > 1:
                    raise _Invalid("Must be given once")
                clean[name] = _from_text(field, values[0])
        except _Invalid as exc:
            errors[name] = exc.message
    if errors == {"limit": LIMIT_EXCEEDED_MESSAGE}:
        raise bad_request(LIMIT_EXCEEDED_MESSAGE, errors)
    if errors:
        raise bad_request("Invalid query parameters", errors)
    return clean


def query_parameters(fields: Schema) -> list[dict[str, Any]]:
    """OpenAPI ``parameters`` entries for a query schema."""
    out = []
    for name, field in fields.items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": field.required,
                                 "schema": field.schema()}
        if field.type == "array":
            param["style"] = "form"
            param["explode"] = True
        if field.description:
            param["description"] = field.description
        out.append(param)
    return out


#: Bodies larger than this are decoded and checked in a worker thread: a transactional request
#: of 200 000 messages (~14 MB of JSON) takes about a second of CPU to decode and check, and on
#: the engine's loop that second would stall every SMPP bind and API request at once. Bodies
#: this large are also decoded in pieces (``control.jsonbody``, ``control.msgpackbody``):
#: ``json.loads`` and ``msgpack.unpackb`` hold the GIL for the whole body, so a worker thread
#: alone would not let the loop run meanwhile.
OFF_LOOP_BYTES = 256 * 1024
# (Lists of items checked one by one: ``dispatch.campaigns.service.OFF_LOOP_ITEMS``.)


def too_large(max_bytes: int, hint: str = "") -> ApiError:
    """The 413 of a request body over ``max_bytes``, in the documented error shape."""
    return ApiError(413, "Payload Too Large",
                    f"Request body too large. Maximum {human_size(max_bytes)} "
                    f"({max_bytes} bytes){hint}")


async def _read_raw(req: falcon.asgi.Request, max_bytes: int,
                    too_large_hint: str = "") -> tuple[list[bytes], int, str]:
    """The raw body (as received, in chunks), its size and its media type: 415 for other
    types, 413 over ``max_bytes``. The chunks are joined by the caller, off the loop when
    the body is large (a copy of tens of MB is a stall of its own)."""
    ctype = (req.content_type or JSON).split(";", 1)[0].strip().lower()
    if ctype not in (JSON, *MSGPACK_TYPES):
        raise ApiError(415, "Unsupported Media Type",
                       f"Unsupported Content-Type; use {JSON} or {MSGPACK}")
    if req.content_length is not None and req.content_length > max_bytes:
        raise too_large(max_bytes, too_large_hint)
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes, too_large_hint)
        chunks.append(chunk)
    return chunks, size, ctype


def _joined(chunks: list[bytes]) -> bytes:
    """The body in one piece; the chunks are let go at once (a large body is otherwise held
    twice while it is decoded)."""
    raw = b"".join(chunks)
    chunks.clear()
    return raw


def _decode(raw: bytes, ctype: str) -> Any:
    """The decoded body (``None`` when empty); undecodable: 400 with a ``body`` message. A body
    holds JSON's values only (RFC 8259), in either type: a JSON ``NaN``/``Infinity`` or a
    number beyond a double, a msgpack bin, extension, non-finite float or non-string key is a
    400 too, naming what (JSON) or where (msgpack) it is."""
    if not raw or raw.isspace():  # (not raw.strip(): that copies the whole body)
        return None
    kind = "JSON" if ctype == JSON else "msgpack"
    large = len(raw) > OFF_LOOP_BYTES
    try:
        if ctype == JSON:
            return jsonbody.loads(raw) if large else jsonbody.loads_whole(raw)
        value = msgpackbody.loads(raw) if large else msgpackbody.unpackb(raw)
        # A msgpack body holds what a JSON body can, nothing more (no bin, no extension
        # types, no NaN): every endpoint then sees the same values from either type.
        msgpackbody.refuse_non_json(value)
        return value
    except jsonbody.NumberRefused as exc:
        raise bad_request("Invalid number in JSON body", {"body": str(exc)}) from None
    except msgpackbody.NonJsonValue as exc:
        raise bad_request("Unsupported value in msgpack body", {exc.where: exc.message}) from None
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError):
        raise bad_request(f"Malformed {kind} body",
                          {"body": f"Request body is not valid {kind}"}) from None


async def read_body(req: falcon.asgi.Request, max_bytes: int) -> Any:
    """The decoded request body (``None`` when empty).

    ``application/json`` (also when no Content-Type is sent) or msgpack; other types are 415,
    bodies over ``max_bytes`` 413, undecodable ones 400 with a ``body`` field message.
    """
    chunks, size, ctype = await _read_raw(req, max_bytes)
    return await off_loop_if(size > OFF_LOOP_BYTES, lambda: _decode(_joined(chunks), ctype))


async def read_object(req: falcon.asgi.Request, max_bytes: int, fields: Schema, *,
                      empty_ok: bool = False, too_large_hint: str = "") -> dict[str, Any]:
    """Read and check a body object; an empty body counts as ``{}`` when ``empty_ok``.
    A large body is decoded and checked off the loop (``OFF_LOOP_BYTES``). ``too_large_hint``
    ends the message of the 413 beyond ``max_bytes``."""
    chunks, size, ctype = await _read_raw(req, max_bytes, too_large_hint)

    def decode_and_check() -> dict[str, Any]:
        data = _decode(_joined(chunks), ctype)
        if data is None:
            if not empty_ok:
                raise bad_request("Request body is required", {"body": "Expected an object"})
            data = {}
        return parse_object(data, fields)

    return await off_loop_if(size > OFF_LOOP_BYTES, decode_and_check)
