"""Minimal asyncio clamd client: INSTREAM (chunked) and PING over TCP or a Unix socket, with time-outs."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass

from mailmoat.config import parse_hostport

CHUNK = 64 * 1024


class ClamdError(Exception):
    """clamd could not be reached or answered something other than a verdict."""


@dataclass
class ClamdResult:
    infected: bool
    signature: str = ""
    reply: str = ""


async def _connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    addr = address.strip()
    if addr.startswith("unix:"):
        addr = addr[5:]
    if addr.startswith("/") or addr.startswith("."):
        return await asyncio.open_unix_connection(addr)
    host, port = parse_hostport(addr)
    return await asyncio.open_connection(host, port)


async def _command(address: str, payload: bytes | None, command: bytes) -> str:
    reader, writer = await _connect(address)
    try:
        writer.write(b"z" + command + b"\0")
        if payload is not None:
            view = memoryview(payload)
            for off in range(0, len(view), CHUNK):
                piece = view[off : off + CHUNK]
                writer.write(struct.pack(">I", len(piece)))
                writer.write(piece)
                await writer.drain()
            writer.write(struct.pack(">I", 0))
        await writer.drain()
        reply = await reader.readuntil(b"\0")
    except asyncio.IncompleteReadError as exc:
        reply = exc.partial
        if not reply:
            raise ClamdError("clamd closed the connection without an answer") from exc
    except (ConnectionResetError, BrokenPipeError) as exc:
        # clamd drops the connection when a stream passes StreamMaxLength; its answer may still be there
        try:
            reply = await asyncio.wait_for(reader.readuntil(b"\0"), 1.0)
        except (asyncio.IncompleteReadError, OSError, TimeoutError):
            raise ClamdError(f"clamd closed the connection: {exc}") from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return reply.rstrip(b"\0").decode("utf-8", "replace").strip()


async def instream(address: str, data: bytes, timeout: float) -> ClamdResult:
    """Scan `data`; raises ClamdError (or TimeoutError/OSError) when clamd gives no verdict."""
    reply = await asyncio.wait_for(_command(address, data, b"INSTREAM"), timeout)
    body = reply.split(":", 1)[1].strip() if reply.startswith("stream:") else reply
    if body.endswith(" FOUND"):
        return ClamdResult(True, body[: -len(" FOUND")].strip(), reply)
    if body == "OK":
        return ClamdResult(False, "", reply)
    raise ClamdError(f"clamd: {reply or 'empty reply'}")


async def ping(address: str, timeout: float) -> bool:
    try:
        return await asyncio.wait_for(_command(address, None, b"PING"), timeout) == "PONG"
    except (OSError, TimeoutError, ClamdError):
        return False
