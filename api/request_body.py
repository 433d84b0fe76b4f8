"""Request bodies are decoded once, strictly, straight into the handler's msgspec type.

Litestar decodes JSON to plain values and then converts them with `strict=False`, which accepts
`"leverage": "5"` as a number; its decoder also lets `UnicodeDecodeError` and `RecursionError` escape
as 500s. Here every body that is not JSON is a 400 and every JSON value of the wrong type a 422.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, get_args

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, SerializationException, ValidationException
from litestar.types import Empty


@lru_cache(maxsize=256)
def _decoder(target: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(target, strict=True)


def _body_type(request: Request[Any, Any, Any]) -> Any:
    """The type the handler declares for its `data` parameter, or `Any` when it declares none."""
    field = request.route_handler.parsed_fn_signature.parameters.get("data")
    return field.annotation if field is not None else Any


def decode_body(body: bytes, target: Any) -> Any:
    """Decode `body` as `target`: malformed input is a 400, a well-formed value of the wrong shape a 422
    naming every field that is wrong (msgspec's decoder stops at the first)."""
    try:
        return _decoder(target).decode(body)
    except msgspec.ValidationError as exc:
        problems = _every_problem(body, target) or [str(exc)]
        raise ValidationException(
            detail="Invalid input", extra=[{"message": message, "key": "data"} for message in problems]
        ) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ClientException(detail=reason) from SerializationException(reason)


def _struct_type(target: Any) -> type[msgspec.Struct] | None:
    """The Struct a body decodes to (`X` or `X | None`), or None for any other shape."""
    options = [target] if isinstance(target, type) else [t for t in get_args(target) if t is not type(None)]
    if len(options) == 1 and isinstance(options[0], type) and issubclass(options[0], msgspec.Struct):
        return options[0]
    return None


def _every_problem(body: bytes, target: Any) -> list[str]:
    """Each field's own validation error, in msgspec's words and with its path: the second, collecting pass
    after the strict decoder failed. Empty when the body is not an object of a Struct (the decoder's error
    is then the whole story)."""
    struct = _struct_type(target)
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return []
    if struct is None or not isinstance(raw, dict):
        return []
    fields = msgspec.structs.fields(struct)
    problems: list[str] = []
    if struct.__struct_config__.forbid_unknown_fields:
        names = {f.encode_name for f in fields}
        problems += [f"Object contains unknown field `{name}` - at `$`" for name in raw if name not in names]
    for field in fields:
        if field.encode_name not in raw:
            if field.required:
                problems.append(f"Object missing required field `{field.encode_name}` - at `$`")
            continue
        try:
            msgspec.convert(raw[field.encode_name], field.type, strict=True)
        except msgspec.ValidationError as exc:
            # msgspec ends a message with its path in the value ("- at `$[0]`", "- at `key` in `$`"):
            # the value is this field's, so `$` becomes `$.field`.
            message, at, where = str(exc).partition(" - at ")
            where = where.replace("`$", f"`$.{field.encode_name}", 1) if at else f"`$.{field.encode_name}`"
            problems.append(f"{message} - at {where}")
    return problems


class StrictJsonRequest(Request[Any, Any, Any]):
    """A request whose `json()` is the handler's body type, decoded strictly."""

    async def json(self) -> Any:
        if self._json is Empty:
            cached = self._connection_state.json
            if cached is not Empty:
                self._json = cached
            else:
                body = await self.body()
                self._json = self._connection_state.json = decode_body(body or b"null", _body_type(self))
        return self._json


__all__ = ["StrictJsonRequest", "decode_body"]
