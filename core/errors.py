"""One error type for everything a user can get wrong, and one way to show it.

Expected failures — a bad data file, a missing or foreign checkpoint, a bad option — raise
:class:`UserError` (or a subclass) with a message that names the file and the reason. Every
command's ``main`` is wrapped in :func:`entry_point`, which prints that message as ONE line on
stderr and exits with status 2 (1 is left for "ran, but some records were skipped"). Tracebacks
are for bugs: ``--debug`` on the command line or ``SEQLAB_DEBUG=1`` shows them for expected errors
too.

``UserError`` is a ``ValueError``, so code that already catches ``ValueError`` around a parse keeps
working. The OS errors the standard library raises for a missing or unreadable file
(``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError`` …) carry the file name and are
shown the same way. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable, Sequence, TypeVar

#: exit status of a command that hit an expected error
EXIT_ERROR = 2
#: exit status of an inference command that finished but skipped (reported) some records
EXIT_SKIPPED = 1
DEBUG_ENV = "SEQLAB_DEBUG"


class UserError(ValueError):
    """An expected failure; ``str(err)`` is the one line the user sees (name the file in it)."""


class DataError(UserError):
    """A data file that cannot be used (unreadable, empty, nothing valid left after skipping)."""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, or written by another app."""


#: shown as one line by :func:`entry_point` without being UserError subclasses
EXPECTED = (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
            FileExistsError, UnicodeDecodeError)

F = TypeVar("F", bound=Callable[..., object])


def debug_enabled(argv: Sequence[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def describe(err: BaseException) -> str:
    """The one line for ``err``: OS errors as ``file: reason``, everything else as its message."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def entry_point(main: F) -> F:
    """Wrap a command's ``main(argv=None)``: expected errors -> one line on stderr + exit 2.

    ``--debug`` is removed from ``argv`` before ``main`` sees it, so no command has to declare it.
    Called from tests (``main([...])``) the wrapper still converts errors to ``SystemExit(2)``, so a
    test asserts on the exit code and the captured stderr, as a user would see them."""

    @functools.wraps(main)
    def wrapped(argv: Sequence[str] | None = None, *args, **kwargs):
        given = list(sys.argv[1:] if argv is None else argv)
        debug = debug_enabled(given)
        cleaned = [a for a in given if a != "--debug"]
        try:
            if argv is None and len(cleaned) != len(given):
                sys.argv = sys.argv[:1] + cleaned
                return main(None, *args, **kwargs)
            return main(cleaned if argv is not None else None, *args, **kwargs)
        except EXPECTED as err:
            if debug:
                raise
            print(f"error: {describe(err)}", file=sys.stderr)
            raise SystemExit(EXIT_ERROR) from None

    return wrapped  # type: ignore[return-value]
