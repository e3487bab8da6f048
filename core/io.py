"""Atomic file writes: readers (and a crash mid-write) see the old file or the complete new one.

The new content goes to a hidden temp file beside the target, ``.NAME.<host>.<pid>.<random>.tmp``,
which is fsync'ed, renamed over the target, and the folder fsync'ed, so after a power cut the target
is the old or the new file, never a prefix. The temp file is created with mode ``0o666`` minus the
umask, as ``open()`` would create the target itself (``mkstemp``'s 0600 made checkpoints private
while ONNX files were not).

A writer killed mid-write (``kill -9``, OOM) cannot delete its temp file, and a checkpoint's is as
big as the checkpoint. The next atomic write into the same folder therefore removes stale temp
files: those of a process on this host that no longer runs, and any not modified for
:data:`STALE_SECONDS` (a writer on another host of a shared file system, or a reused pid).
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Callable

#: a temp file untouched for this long belongs to no live writer (writes keep touching their file)
STALE_SECONDS = 10 * 60
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"
#: the names :func:`temp_path` gives
_TEMP = re.compile(r"\.(?P<target>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


def temp_path(path: Path) -> Path:
    """Where a write of ``path`` puts its content before the rename."""
    return path.parent / f".{path.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temps(path: str | os.PathLike[str], now: float | None = None) -> list[Path]:
    """Delete the temp files dead writers left beside ``path``; returns what was removed.

    Every target in the folder counts, not only ``path``: Lightning names each checkpoint after its
    step, so the target a killed save was writing is never written again. Names from ``mkstemp``
    (``.NAME.XXXXXXXX.tmp``, before the pid was in the name) are matched for ``path`` only, by age."""
    path = Path(path)
    legacy = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
    now = time.time() if now is None else now
    removed = []
    try:
        candidates = list(path.parent.glob(".*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        match = _TEMP.fullmatch(tmp.name)
        if match is None and legacy.fullmatch(tmp.name) is None:
            continue  # not a temp file of ours
        try:
            old = now - tmp.stat().st_mtime > STALE_SECONDS
            dead = (match is not None and match["host"] == _HOST and int(match["pid"]) != os.getpid()
                    and not _pid_alive(int(match["pid"])))
            if old or dead:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone already, or not ours to delete: never fail a write over it
            continue
    return removed


def _fsync(path: str | os.PathLike[str], directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:  # some platforms/file systems cannot open a folder: the rename still happened
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` on a temp file in the same folder, then rename it over ``path``.
    On any failure the temp file is removed and ``path`` is left as it was."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        write(str(path))  # a pipe or device (``--output /dev/stdout``) cannot be replaced, only written
        return
    if path.is_dir():  # (the rename below would fail naming the hidden temp file)
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, as for open()
    except OSError as err:  # name the file the user asked for, not the hidden temp file
        raise type(err)(err.errno, err.strerror, str(path)) from err
    try:
        write(str(tmp))
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent, directory=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
