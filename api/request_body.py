"""Request bodies are decoded once, strictly, straight into the handler's msgspec type.

Litestar decodes JSON to plain values and then converts them with `strict=False`, which accepts
`"leverage": "5"` as a number; its decoder also lets `UnicodeDecodeError` and `RecursionError` escape
as 500s. Here every body that is not JSON is a 400 and every JSON value of the wrong type a 422.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

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
    """Decode `body` as `target`: malformed input is a 400, a well-formed value of the wrong shape a 422."""
    try:
        return _decoder(target).decode(body)
    except msgspec.ValidationError as exc:
        raise ValidationException(detail="Invalid input", extra=[{"message": str(exc), "key": "data"}]) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ClientException(detail=reason) from SerializationException(reason)


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
