"""The sandbox's wire format: JSON objects, each behind a 4-byte big-endian length, over a Unix socket.

Both sides use it: the parent (curate) and the jailed worker. Only plain data crosses, never pickle,
so a worker that runs hostile code can at worst send a malformed or oversized message, which the
reader refuses with `ProtocolError` before parsing more than `limit` bytes. File descriptors travel
only from the parent into the jail (`send(..., fd=...)`, SCM_RIGHTS); the parent's reads drop any
the jail would send. Standard library only: the jail imports this file outside the curate package.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from typing import Any

_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message within the size limit."""


class Channel:
    """One end of a socket that carries length-prefixed JSON objects."""

    def __init__(self, sock: socket.socket, limit: int, accept_fds: bool = False) -> None:
        self.sock = sock
        self.limit = limit
        self.accept_fds = accept_fds
        self.fds: list[int] = []  # descriptors received (accept_fds), oldest first
        self._buffer = bytearray()

    def fileno(self) -> int:
        """The socket's descriptor, so that `multiprocessing.connection.wait` can watch a channel."""
        return self.sock.fileno()

    def send(self, message: dict[str, Any], fd: int | None = None) -> None:
        """Write one message; `fd` travels with its first byte."""
        body = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode()
        frame = _HEADER.pack(len(body)) + body
        if fd is None:
            self.sock.sendall(frame)
            return
        sent = socket.send_fds(self.sock, [frame], [fd])
        self.sock.sendall(frame[sent:])

    def pending(self) -> dict[str, Any] | None:
        """A complete message already read, or None; raises ProtocolError on a bad frame."""
        if len(self._buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > self.limit:
            raise ProtocolError(f"a message of {size:,} bytes (the limit is {self.limit:,})")
        if len(self._buffer) < _HEADER.size + size:
            return None
        body = bytes(self._buffer[_HEADER.size : _HEADER.size + size])
        del self._buffer[: _HEADER.size + size]
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise ProtocolError(f"a message that is not JSON ({type(error).__name__})") from None
        if not isinstance(message, dict):
            raise ProtocolError(f"a message that is not an object ({type(message).__name__})")
        return message

    def fill(self) -> bool:
        """Read what the socket has now (it must be readable); False at end of file."""
        if self.accept_fds:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 16, 4)
            self.fds.extend(fds)
        else:
            data = self.sock.recv(1 << 16)
        self._buffer += data
        return bool(data)

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message; EOFError at end of file, TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (message := self.pending()) is None:
            if deadline is not None:
                self.sock.settimeout(max(deadline - time.monotonic(), 1e-3))
            try:
                more = self.fill()
            except TimeoutError:
                raise TimeoutError("no message in time") from None
            finally:
                if deadline is not None:
                    self.sock.settimeout(None)
            if not more:
                raise EOFError("the other side closed the channel")
        return message

    def close(self) -> None:
        """Close the socket (and any received descriptor not taken)."""
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        self.sock.close()
