"""Run a decoder that can abort the process in a helper process, so that a crash is a clean error.

The ``aedat`` package's Rust decoder does not only raise on damaged files: some panics abort the
whole process ("panic in a destructor during cleanup ... aborting", SIGABRT), which no ``except``
catches and which would kill ``preprocess`` and every recording after the bad one. So the decoder
runs in a helper forked once per process (per pool worker) that answers requests over a pipe; a
helper that dies is reported as a UserError for the file it was decoding, and the next request
forks a new one. A request costs one pipe round trip, not a fork.
"""

from __future__ import annotations

import faulthandler
import os
import select
import signal
import struct
from collections.abc import Callable

from ckdsnn_events.errors import UserError

_REPLY = struct.Struct("<BQ")  # status (0 ok, 1 UserError), payload length
_REQUEST = struct.Struct("<I")  # length of the utf-8 argument
TIMEOUT_S = 300.0  # a decoder stuck this long on one file is stopped


def _read_exactly(fd: int, n: int, timeout: float | None = None) -> bytes:
    chunks, left = [], n
    while left:
        if timeout is not None and not select.select([fd], [], [], timeout)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class IsolatedWorker:
    """``work(argument) -> bytes`` (or a UserError) run in a helper process.

    Args:
        work: the function the helper runs; it exists in the helper because the helper is a fork.
        timeout_s: how long one request may take before the helper is stopped.
    """

    def __init__(self, work: Callable[[str], bytes], timeout_s: float = TIMEOUT_S):
        self.work = work
        self.timeout_s = timeout_s
        self.pid = None
        self.owner = None  # the process that forked the helper (pool workers fork their own)

    def _start(self) -> None:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the helper; coverage does not follow it
            os.close(request_w)
            os.close(reply_r)
            try:
                self._serve(request_r, reply_w)
            finally:
                os._exit(0)
        os.close(request_r)
        os.close(reply_w)
        self.pid, self.owner, self.request, self.reply = pid, os.getpid(), request_w, reply_r

    def _serve(self, request_fd: int, reply_fd: int) -> None:  # pragma: no cover - in the helper
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which closes the pipe
        # the decoder prints its panics (and backtraces) to stderr; the error message carries them
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        faulthandler.disable()  # (pytest enables it on its own copy of stderr)
        while True:
            try:
                (length,) = _REQUEST.unpack(_read_exactly(request_fd, _REQUEST.size))
                argument = _read_exactly(request_fd, length).decode("utf-8", errors="surrogateescape")
            except EOFError:
                return
            try:
                status, body = 0, self.work(argument)
            except UserError as err:
                status, body = 1, str(err).encode("utf-8", errors="replace")
            _write_all(reply_fd, _REPLY.pack(status, len(body)) + body)

    def _stop(self) -> str:
        """Reap the helper; return how it ended."""
        for fd in (self.request, self.reply):
            try:
                os.close(fd)
            except OSError:
                pass
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
        return f"exit status {os.WEXITSTATUS(status)}"

    def call(self, argument: str, crashed: Callable[[str], UserError]) -> bytes:
        """The helper's answer for ``argument``; ``crashed(how)`` makes the error if it dies."""
        if not hasattr(os, "fork"):  # pragma: no cover - Windows: no isolation
            return self.work(argument)
        if self.pid is None or self.owner != os.getpid():
            self._start()
        encoded = argument.encode("utf-8", errors="surrogateescape")
        try:
            _write_all(self.request, _REQUEST.pack(len(encoded)) + encoded)
            status, length = _REPLY.unpack(_read_exactly(self.reply, _REPLY.size, self.timeout_s))
            body = _read_exactly(self.reply, length, self.timeout_s)
        except (EOFError, BrokenPipeError, TimeoutError) as err:
            how = self._stop()
            raise crashed(f"no answer after {self.timeout_s:.0f} s" if isinstance(err, TimeoutError) else how) from None
        if status == 1:
            raise UserError(body.decode("utf-8", errors="replace"))
        return body
