"""Writing files so that they survive a crash: write a temp file, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _DirState:
    __slots__ = ("busy", "done", "issued", "users")

    def __init__(self) -> None:
        self.issued = 0  # tickets handed out: one per caller, after its rename
        self.done = 0  # every ticket up to this one is covered by a finished fsync
        self.busy = False
        self.users = 0


class GroupDirSync:
    """`fsync_dir` shared by the threads that wait for the same directory at the same time.

    A caller's rename happened before it took its ticket; the fsync that covers it starts after
    the ticket was handed out, so one fsync makes every rename made before it durable. A caller
    returns only when an fsync that covers it has finished (or raises that fsync's error, after
    which the next waiter tries again).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._dirs: dict[str, _DirState] = {}

    def sync(self, path: Path) -> None:
        key = os.fspath(path)
        with self._cond:
            st = self._dirs.get(key)
            if st is None:
                st = self._dirs[key] = _DirState()
            st.issued += 1
            ticket = st.issued
            st.users += 1
            try:
                while st.busy and st.done < ticket:
                    self._cond.wait()
            except BaseException:
                self._leave(key, st)
                raise
            if st.done >= ticket:
                self._leave(key, st)
                return
            st.busy = True
            upto = st.issued
        ok = False
        try:
            fsync_dir(path)
            ok = True
        finally:
            with self._cond:
                st.busy = False
                if ok:
                    st.done = max(st.done, upto)
                self._leave(key, st)
                self._cond.notify_all()

    def _leave(self, key: str, st: _DirState) -> None:
        st.users -= 1
        if st.users == 0 and not st.busy:  # nobody holds a ticket: forget the directory
            del self._dirs[key]


_GROUP = GroupDirSync()


def fsync_dir_shared(path: Path) -> None:
    """`fsync_dir`, one fsync for all threads of this process that need it at the same time."""
    _GROUP.sync(path)


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
    fsync_dir_shared(folder)
    return final


@functools.cache
def absolute(path: Path) -> Path:
    """`path.resolve()`, once per path: resolving walks every component with a system call."""
    return path.resolve()
