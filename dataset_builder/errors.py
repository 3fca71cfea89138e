"""Exception types raised by the dataset builder.

Every error a user can provoke with bad input is a subclass of :class:`ModalityConflictError`, so the
command line can print its message without a traceback and exit with status 2.
"""

from __future__ import annotations


class ModalityConflictError(Exception):
    """Base class of all errors caused by bad input or a bad environment (not by a bug)."""


class BuildError(ModalityConflictError):
    """The dataset could not be built (bad arguments, an output folder that must not be replaced, ...)."""


class RenderError(ModalityConflictError):
    """An image specification cannot be drawn (for example a layout that does not fit the canvas)."""


class SceneError(RenderError):
    """A scene of the attribute set is invalid (an ambiguous target name, overlapping objects) or cannot
    be sampled."""


class DatasetValidationError(ModalityConflictError):
    """A built dataset folder does not satisfy the schema or the construction invariants.

    ``problems``: One line per problem found, most important first. The exception message lists them all.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        head = self.problems[0] if self.problems else "invalid dataset"
        rest = self.problems[1:]
        message = head if not rest else head + "\n" + "\n".join(f"  also: {p}" for p in rest)
        super().__init__(message)


class OutputWriteError(ModalityConflictError, RuntimeError):
    """A file or folder could not be written (full disk, read-only file system, no permission).

    Also a ``RuntimeError``: the command line reports a failed run (exit status 1), not bad input. Nothing
    half-written is left behind by the writers that raise it.
    """


class DataResolutionError(ModalityConflictError, RuntimeError):
    """The data of a task could not be found, fetched or built; the message says what to do."""


class PushError(ModalityConflictError, RuntimeError):
    """Publishing a dataset folder to the Hugging Face Hub failed; no commit was made.

    Also a ``RuntimeError``: the command line reports a failed run (exit status 1), not bad input.
    """


class UnsafeFileError(ModalityConflictError, ValueError):
    """A file that must be read is not a regular file (a pipe, a device, a folder) or is larger than the
    cap on what is read from it; the message names the file and what it is."""
