"""The wire base every API area builds on: camelCase Structs, the request-string rule, the page cursor.

Requests reject unknown fields; responses are frozen. An area's own types live in `api/<area>/schemas.py`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar.params import Parameter

NO_NUL = r"^[^\u0000]*$"  # PostgreSQL text cannot hold NUL; refuse it at the edge with a clear error


def text(min_length: int, max_length: int, **meta: str) -> Any:
    """A request string with length limits and no NUL characters."""
    return Annotated[str, msgspec.Meta(min_length=min_length, max_length=max_length, pattern=NO_NUL, **meta)]


class Request(msgspec.Struct, forbid_unknown_fields=True, rename="camel", frozen=True):
    pass


class Response(msgspec.Struct, rename="camel", frozen=True):
    pass


# Keyset pagination: a page answers `nextCursor`, the next request sends it back as `cursor`.
NextCursor = Annotated[uuid.UUID | None, msgspec.Meta(
    description="Pass as `cursor` for the next page; null on the last page")]
Cursor = Annotated[uuid.UUID | None, Parameter(description="`nextCursor` of the previous page")]
