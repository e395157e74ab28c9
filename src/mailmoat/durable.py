"""Writing files so that they survive a crash: write a temp file, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(folder: Path, name: str, data: bytes, mode: int = 0o640) -> Path:
    """`folder/name` holding `data`, durably; an existing file of the same size is kept (a retry)."""
    final = folder / name
    with contextlib.suppress(FileNotFoundError):
        if os.stat(final).st_size == len(data):
            return final
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(tmp, flags, mode)
    except FileNotFoundError:  # the folder's first file: create it only then (not a mkdir per file)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(folder)
    return final


@functools.cache
def absolute(path: Path) -> Path:
    """`path.resolve()`, once per path: resolving walks every component with a system call."""
    return path.resolve()
