"""Crash safety: SIGKILL the gateway again and again while clients send 500 messages.

Afterwards every message that got a 250 is in the recipient's Maildir exactly once (by tracking
id), nothing is there twice, and whatever is there without a 250 comes from an attempt the
client saw fail (the gateway may keep a message whose 250 was lost in the crash — never the
other way round).
"""

from __future__ import annotations

import contextlib
import random
import smtplib
import threading
import time
from pathlib import Path

import pytest

from mailmoat.store.db import Store
from tests.support.gateway import SubprocessGateway, maildir_copies, wait_for
from tests.support.net import free_port

pytestmark = pytest.mark.slow

TOTAL = 500
CLIENTS = 4
KILL_AT = (40, 130, 230, 330, 430)  # acknowledged-message counts after which the gateway is killed
RCPT = "crash@localhost"


def _message(seq: int, attempt: int) -> bytes:
    return (
        f"From: load <load@example.org>\r\nTo: {RCPT}\r\nSubject: crash test {seq}\r\n"
        f"Message-ID: <crash-{seq}-{attempt}@example.org>\r\nX-Test-Seq: {seq}.{attempt}\r\n\r\n"
        + f"message {seq} attempt {attempt}\r\n" * 20
    ).encode()


class Load:
    def __init__(self, port: int) -> None:
        self.port = port
        self.acked: dict[int, str] = {}  # seq -> queue id from the 250 reply
        self.failed: set[str] = set()  # "seq.attempt" that did not get a 250
        self.lock = threading.Lock()

    def send_one(self, seq: int) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as c:
                    c.ehlo("load.example.org")
                    c.mail("load@example.org")
                    c.rcpt(RCPT)
                    code, reply = c.data(_message(seq, attempt))
                    if code == 250:
                        with self.lock:
                            self.acked[seq] = reply.decode().rsplit(" ", 1)[1]
                        with contextlib.suppress(OSError, smtplib.SMTPException):
                            c.quit()
                        return
            except (OSError, smtplib.SMTPException):
                pass
            with self.lock:
                self.failed.add(f"{seq}.{attempt}")
            time.sleep(0.05)

    def client(self, seqs: list[int]) -> None:
        for seq in seqs:
            self.send_one(seq)


def test_sigkill_never_loses_or_duplicates(tmp_path: Path) -> None:
    data = tmp_path / "var"
    port = free_port()
    args = ["--listen", f"127.0.0.1:{port}", "--workers", "1", "--domain", "localhost"]
    gw = SubprocessGateway(data, args).start()
    load = Load(port)
    clients = [
        threading.Thread(target=load.client, args=(list(range(i, TOTAL, CLIENTS)),), daemon=True) for i in range(CLIENTS)
    ]
    for t in clients:
        t.start()
    kills = 0
    rng = random.Random(7)
    try:
        for threshold in KILL_AT:
            wait_for(lambda th=threshold: len(load.acked) >= th, timeout=180, interval=0.002, what=f"{threshold} acks")
            time.sleep(rng.uniform(0, 0.03))  # land somewhere inside a transaction or the processing
            gw.kill()
            kills += 1
            # The workers must die with the gateway (else they would race the next one).
            wait_for(lambda g=gw: not g.group_alive(), timeout=10, what="the workers to exit with the gateway")
            time.sleep(rng.uniform(0, 0.3))
            gw = SubprocessGateway(data, args).start()
        for t in clients:
            t.join(300)
        assert len(load.acked) == TOTAL
        # Let the last gateway finish everything it holds.
        expected = {f"{qid}-0000" for qid in load.acked.values()}
        wait_for(
            lambda: expected <= set(maildir_copies(data / "mailboxes", RCPT)),
            timeout=180, interval=0.2, what="every acknowledged message in the Maildir",
        )
        wait_for(lambda: _spool_empty(data), timeout=60, what="an empty spool")
    finally:
        code = gw.stop()
    assert code == 0, gw.tail()
    assert kills == len(KILL_AT)

    copies = maildir_copies(data / "mailboxes", RCPT)
    # Exactly once by tracking id; no tracking id in two files.
    dupes = {tid: paths for tid, paths in copies.items() if len(paths) != 1}
    assert not dupes, dupes
    for seq, qid in load.acked.items():
        assert f"{qid}-0000" in copies, f"message {seq} was acknowledged as {qid} but is not in the Maildir"
    # Anything delivered without a 250 comes from an attempt the client saw fail.
    acked_ids = set(load.acked.values())
    extra = {tid: paths[0] for tid, paths in copies.items() if tid.rsplit("-", 1)[0] not in acked_ids}
    for _tid, path in extra.items():
        seq_attempt = _header(path, "X-Test-Seq")
        assert seq_attempt in load.failed, f"{path} was delivered but never sent"
    # And each acknowledged message is on record.
    store = Store(f"sqlite:///{data / 'mailmoat.db'}", create=False)
    try:
        for qid in acked_ids:
            row = store.get_message(qid)
            assert row is not None and row.rcpt_tos == [RCPT]
    finally:
        store.close()


def _spool_empty(data: Path) -> bool:
    spool = data / "spool"
    return not any(p.is_file() for p in spool.rglob("*") if p.parent.name != "spool" and p.name != "lock")


def _header(path: Path, name: str) -> str:
    for line in path.read_bytes().split(b"\n"):
        if line.lower().startswith(name.lower().encode() + b":"):
            return line.split(b":", 1)[1].strip().decode()
        if not line.strip():
            break
    return ""


def test_sigterm_to_the_whole_process_group_stops_without_restarting_workers(tmp_path: Path) -> None:
    """systemd (KillMode=control-group) and `timeout` signal every process of the gateway at once: its
    workers must leave the stopping to the gateway, not die and be restarted while it stops."""
    import os
    import signal

    def signal_workers() -> None:
        assert gw.proc is not None
        for pid in Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)

    port = free_port()
    gw = SubprocessGateway(tmp_path / "var", ["--listen", f"127.0.0.1:{port}", "--workers", "2"]).start()
    try:
        signal_workers()  # the workers may still be starting: the signal must not kill them then either
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("load@example.org", [RCPT], _message(1, 1))
        wait_for(lambda: len(maildir_copies(tmp_path / "var" / "mailboxes", RCPT)) == 1, what="delivery")
        assert gw.proc is not None
        # The order a group's processes get the signal in is the kernel's: here the workers first,
        # and the gateway only after its monitor (twice a second) has had time to look at them.
        signal_workers()
        time.sleep(1.5)
        os.killpg(gw.proc.pid, signal.SIGTERM)
        assert gw.proc.wait(60) == 0, gw.tail()
        assert "restarting it" not in gw.tail() and "did not stop in time" not in gw.tail(), gw.tail()
    finally:
        gw.reap_group()
