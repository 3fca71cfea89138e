"""Writing output files whole or not at all, with one-line errors for full or read-only file systems.

Every command that writes a result (build, submit, report, leaderboard, eval-results, probe) goes
through these helpers: the bytes go to a hidden temporary sibling that is renamed over the target only
once it is complete, so a full disk, a read-only mount or an interrupt never leaves a half-written file
or a stray ``*.partial`` behind, and the error names the path and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from modality_conflict.dataset_builder.errors import OutputWriteError

_REASONS = {
    errno.ENOSPC: ("no space left on the device", "free some space or write somewhere else"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write somewhere else"),
    errno.EFBIG: ("file too large for this file system or limit", "write somewhere else"),
    errno.EROFS: ("read-only file system", "write to a writable folder"),
    errno.EACCES: ("permission denied", "write to a folder you may write to"),
    errno.EPERM: ("operation not permitted", "write to a folder you may write to"),
    errno.ENOTDIR: ("a parent of the path is a file, not a folder", "choose another path"),
    errno.EISDIR: ("the path is a folder", "choose another path"),
}


def os_error_text(error: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """One line describing an ``OSError`` of a write: the path, the reason and a hint.

    ``path``: The path being written (default: the error's own file name).
    """
    where = path if path is not None else (error.filename or "?")
    reason, hint = _REASONS.get(error.errno or -1, (error.strerror or str(error), "check the path"))
    return f"cannot write {where}: {reason} ({hint})"


def ensure_folder(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its parents; raise :class:`OutputWriteError` with a one-line message on failure."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputWriteError(
            f"cannot write {path}: it exists and is not a folder (choose another path)"
        ) from None
    except OSError as error:
        raise OutputWriteError(os_error_text(error, path)) from None
    return path


def temporary_sibling(path: Path, kind: str = "partial") -> Path:
    """A hidden, unique name next to ``path``: ``.<name>.<kind>-<pid>-<token>``."""
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (one of another user's counts); the owner of a temporary sibling."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:
        return False  # no process can have that number
    except OSError:
        return True  # another user's process, or unknown: never delete what may be in use
    return True


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it replaces ``path`` only if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left as it was; an ``OSError`` (full
    disk, read-only file system, ...) becomes an :class:`OutputWriteError` naming ``path``.

    ``path``: The final file. Its folder is created if needed.
    Yields where to write (for writers that take a path, such as matplotlib's ``savefig``).
    """
    path = Path(path)
    ensure_folder(path.parent)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        _remove_quietly(tmp)
        raise OutputWriteError(os_error_text(error, path)) from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all (see :func:`atomic_file`); return the path."""
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` whole or not at all (see :func:`atomic_file`); return the path."""
    return write_bytes_atomic(path, text.encode(encoding))


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
