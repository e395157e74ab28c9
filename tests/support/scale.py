"""Several gateway nodes and task workers on one PostgreSQL database, as processes (tests and bench)."""

from __future__ import annotations

import contextlib
import os
import smtplib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.gateway import MAILMOAT, SubprocessGateway, write_toml
from tests.support.net import free_port

SENDER = "load@example.org"


def node_config(path: Path, **tasks: Any) -> Path:
    """A config for nodes and workers: fast worker heartbeats for tests, recall by the Maildir backend."""
    data: dict[str, Any] = {
        "server": {"domains": ["localhost"]},
        # Nodes run no task worker of their own unless asked: the tests start dedicated workers.
        "tasks": {"heartbeat": 1.0, "stalled_after": 4.0, "serve_worker": False, **tasks},
    }
    return write_toml(path, data)


def node_dir(root: Path, name: str, shared_mail: Path) -> Path:
    """A node's own data dir (spool, raw) whose Maildir store is the shared one (a shared mount)."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    shared_mail.mkdir(parents=True, exist_ok=True)
    link = d / "mailboxes"
    if not link.exists():
        link.symlink_to(shared_mail, target_is_directory=True)
    return d


def start_node(root: Path, name: str, db: str, shared_mail: Path, config: Path, workers: int = 1) -> SubprocessGateway:
    args = ["--listen", f"127.0.0.1:{free_port()}", "--workers", str(workers), "--db", db]
    return SubprocessGateway(node_dir(root, name, shared_mail), args, config).start()


def node_port(gw: SubprocessGateway) -> int:
    return int(gw.args[gw.args.index("--listen") + 1].rsplit(":", 1)[1])


class Worker:
    """`mailmoat worker` as a child process in its own session (so it can be SIGKILLed like a crash)."""

    def __init__(self, root: Path, name: str, db: str, shared_mail: Path, config: Path) -> None:
        self.name = name
        self.data = node_dir(root, name, shared_mail)
        self.log = root / f"{name}.log"
        cmd = [MAILMOAT, "worker", "--data-dir", str(self.data), "--db", db, "-c", str(config), "--name", name]
        env = dict(os.environ)
        env.pop("MAILMOAT_DATA_DIR", None)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 9)
        self.proc.wait(30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def message(seq: int, rcpt: str) -> bytes:
    return (
        f"From: Load <{SENDER}>\r\nTo: {rcpt}\r\nSubject: scale test {seq}\r\n"
        f"Message-ID: <scale-{seq}@example.org>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\n"
        f"Hello, this is message {seq}. See https://docs.example.com/page/{seq % 50} for details.\r\n"
    ).encode()


def rcpt_of(seq: int, mailboxes: int) -> str:
    return f"user{seq % mailboxes}@localhost"


class Load:
    """Clients sending numbered messages to several gateways at once (one connection per client)."""

    def __init__(self, ports: list[int], total: int, clients_per_port: int = 4, mailboxes: int = 40) -> None:
        self.ports = ports
        self.total = total
        self.mailboxes = mailboxes
        self.acked: dict[int, str] = {}
        self.failed: list[str] = []
        self.lock = threading.Lock()
        n = len(ports) * clients_per_port
        self.threads = [
            threading.Thread(target=self._client, args=(ports[i % len(ports)], list(range(i, total, n))), daemon=True)
            for i in range(n)
        ]

    def _client(self, port: int, seqs: list[int]) -> None:
        conn: smtplib.SMTP | None = None
        for seq in seqs:
            rcpt = rcpt_of(seq, self.mailboxes)
            try:
                if conn is None:
                    conn = smtplib.SMTP("127.0.0.1", port, timeout=60)
                    conn.ehlo("load.example.org")
                conn.mail(SENDER)
                conn.rcpt(rcpt)
                code, reply = conn.data(message(seq, rcpt))
                with self.lock:
                    if code == 250:
                        self.acked[seq] = reply.decode().rsplit(" ", 1)[1]
                    else:
                        self.failed.append(f"{seq}: {code} {reply!r}")
            except (OSError, smtplib.SMTPException) as exc:
                with self.lock:
                    self.failed.append(f"{seq}: {exc}")
                conn = None
        if conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                conn.quit()

    def run(self, timeout: float = 600.0) -> float:
        """Send everything; seconds it took until the last 250."""
        t0 = time.monotonic()
        for t in self.threads:
            t.start()
        for t in self.threads:
            t.join(timeout)
        return time.monotonic() - t0


@contextlib.contextmanager
def psql(url: str) -> Iterator[Any]:
    """A psycopg connection (autocommit) to the test database."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def scalar(url: str, sql: str, *args: Any) -> Any:
    with psql(url) as c:
        row = c.execute(sql, args).fetchone()
        return row[0] if row else None


__all__ = [
    "SENDER", "Load", "Worker", "message", "node_config", "node_dir", "node_port", "psql", "rcpt_of", "scalar",
    "start_node",
]
