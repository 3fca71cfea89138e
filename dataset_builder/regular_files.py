"""Reading an untrusted file whole: only a regular file, and never more than a cap.

A manifest, a dataset card or a shard may be a link to ``/dev/zero`` or a named pipe planted in a folder or
the cache; reading one would exhaust memory or block for ever. Every whole-file read of a dataset folder
goes through :func:`read_regular_file`, which refuses both with one line before reading a byte.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modality_conflict.dataset_builder.errors import UnsafeFileError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a ``st_mode`` describes, in words ("a named pipe", "a regular file", ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def regular_file_size(path: Path) -> int:
    """The size of ``path`` (links followed), refusing anything that is not a regular file.

    Raises ``FileNotFoundError`` when nothing is there.
    Raises ``UnsafeFileError`` when it is a pipe, a device, a folder or a socket.
    """
    mode = os.stat(path)
    if not stat.S_ISREG(mode.st_mode):
        raise UnsafeFileError(f"{path} is {file_kind(mode.st_mode)}, not a regular file: it is not read")
    return mode.st_size


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    The file is checked before it is opened and again on the open handle (opened non-blocking, so a pipe
    swapped in between cannot block), and at most ``max_bytes + 1`` bytes are read.

    Raises ``FileNotFoundError`` or ``PermissionError`` as ``open`` raises them.
    Raises ``UnsafeFileError`` for a pipe, a device, a folder, a socket, or a file over ``max_bytes`` (naming
        it).
    """
    path = Path(path)
    regular_file_size(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd)
        if not stat.S_ISREG(mode.st_mode):
            raise UnsafeFileError(f"{path} is {file_kind(mode.st_mode)}, not a regular file: it is not read")
        if mode.st_size > max_bytes:
            raise UnsafeFileError(
                f"{path} is {mode.st_size} bytes, more than the {max_bytes} read from such a file"
            )
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFileError(f"{path} grew past {max_bytes} bytes while it was read")
    return data
