"""Writing files so that they survive a crash: write a temp file, fsync, rename, fsync the directory."""

from __future__ import annotations

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
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    if final.exists() and final.stat().st_size == len(data):
        return final
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
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
