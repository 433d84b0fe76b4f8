"""A minimal HTTP/1.1 keep-alive client on asyncio streams: cheap enough not to be the bottleneck it measures."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit


class RawResponse:
    __slots__ = ("status_code", "body")

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body

    def json(self) -> object:
        return json.loads(self.body)


def build_request(method: str, path: str, host: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request; build a request once and send it many times."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class RawConnection:
    """One persistent connection; requests on it run one at a time."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> RawResponse:
        return await self.send(build_request(method, path, self.authority, headers, body))

    async def send(self, request: bytes) -> RawResponse:
        """Send prepared request bytes (see `build_request`) and read the whole response."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(request)
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return RawResponse(status, payload)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
