"""Runs Debian's clamd in the foreground on loopback with a signature database written by the test."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.attachgen import EICAR
from tests.support.net import free_port

CLAMD = "/usr/sbin/clamd"
CUSTOM_MARKER = b"MAILMOAT-TEST-SIGNATURE-7f3a9c"


@dataclass
class Clamd:
    tcp: str  # "127.0.0.1:port"
    unix: str  # socket path
    proc: subprocess.Popen[bytes]
    log: Path


def available() -> bool:
    return Path(CLAMD).exists()


def write_database(db: Path) -> None:
    """EICAR as an MD5 (hdb) signature and a custom body (ndb) signature: no freshclam, no internet."""
    db.mkdir(parents=True, exist_ok=True)
    (db / "mailmoat-test.hdb").write_text(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Mailmoat.Test.EICAR\n")
    (db / "mailmoat-test.ndb").write_text(f"Mailmoat.Test.Custom:0:*:{CUSTOM_MARKER.hex()}\n")


def _ping(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1) as s:
            s.sendall(b"zPING\0")
            return s.recv(16).startswith(b"PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running(tmp: Path, timeout: float = 60.0) -> Iterator[Clamd]:
    write_database(tmp / "db")
    (tmp / "tmp").mkdir(exist_ok=True)
    port = free_port()
    sock = tmp / "clamd.sock"
    conf = tmp / "clamd.conf"
    conf.write_text(
        "\n".join([
            "Foreground yes",
            f"DatabaseDirectory {tmp / 'db'}",
            f"TemporaryDirectory {tmp / 'tmp'}",
            f"LogFile {tmp / 'clamd.log'}",
            f"PidFile {tmp / 'clamd.pid'}",
            f"LocalSocket {sock}",
            "TCPAddr 127.0.0.1",
            f"TCPSocket {port}",
            "MaxThreads 2",
            "StreamMaxLength 10M",
            "SelfCheck 0",
            "ScanArchive yes",
            "",
        ])
    )
    proc = subprocess.Popen([CLAMD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp)
    try:
        deadline = time.monotonic() + timeout
        while not _ping(("127.0.0.1", port)):
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                log = (tmp / "clamd.log").read_text() if (tmp / "clamd.log").exists() else ""
                raise RuntimeError(f"clamd exited with {proc.returncode}: {err} {log}")
            if time.monotonic() > deadline:
                raise RuntimeError("clamd did not answer PING in time")
            time.sleep(0.2)
        yield Clamd(tcp=f"127.0.0.1:{port}", unix=str(sock), proc=proc, log=tmp / "clamd.log")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(tmp / "tmp", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)
