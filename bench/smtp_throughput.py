"""SMTP throughput and added latency of the gateway (spool fsync → scan → Maildir delivery → record), next to
Postfix's smtp-sink (accepts and discards) as the loopback ceiling, on the same messages in the same run.

    .venv/bin/python bench/smtp_throughput.py [--messages 1000] [--latency-messages 200] [--workers N]
                                              [--skip-analyzers NAME,...]

1 client: a fresh connection per message (connect, EHLO, MAIL, RCPT, DATA, QUIT); the gateway's
latency is measured until the message is in the recipient's Maildir. 20 clients: Postfix's
smtp-source sends the same message file to smtp-sink and to the gateway; the gateway's rate counts
until the last message is delivered into the Maildir, not only acknowledged.

--skip-analyzers runs the gateway without the named analyzers (to see what one analyzer costs);
the figures are then not those of the product as shipped and the output says so.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import shutil
import signal
import smtplib
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
MAILMOAT = str(Path(sys.executable).with_name("mailmoat"))
RCPT = "bench@localhost"
SENDER = "sender@example.org"
SKIP_ENV = "MAILMOAT_BENCH_SKIP_ANALYZERS"


def _apply_skip() -> None:
    """Drop analyzers named in the environment from every Scanner built in this process."""
    skip = {n for n in os.environ.get(SKIP_ENV, "").split(",") if n}
    if not skip:
        return
    from mailmoat.analyzers import base, registry

    original = registry.build

    def build(env: base.AnalyzerEnv) -> list[base.BaseAnalyzer]:
        return [a for a in original(env) if a.name not in skip]

    registry.build = build


# At import time: the gateway's spawned workers import this module as their __main__ too.
_apply_skip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_message(size: int) -> bytes:
    """A plain business-like message with text and HTML parts and a few links, about `size` bytes."""
    head = (
        f"From: Alice Example <{SENDER}>\r\nTo: Bench <{RCPT}>\r\nSubject: Quarterly report and next steps\r\n"
        "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <bench-1@example.org>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    )
    para = (
        "Hello team, please find the figures for the quarter below. The details are on "
        "https://intranet.example.org/reports/q1 and the slides on https://docs.example.org/s/q1-deck. "
        "Let me know if anything is unclear before Thursday.\r\n"
    )
    text, html = [], []
    while len(head) + sum(map(len, text)) + sum(map(len, html)) < size - 200:
        text.append(para)
        html.append(f"<p>{para.strip()}</p>\r\n")
    body = (
        '--b1\r\nContent-Type: text/plain; charset="utf-8"\r\n\r\n' + "".join(text)
        + '--b1\r\nContent-Type: text/html; charset="utf-8"\r\n\r\n<html><body>' + "".join(html)
        + "</body></html>\r\n--b1--\r\n"
    )
    return (head + body).encode()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def send_one(port: int, msg: bytes) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
        c.ehlo("bench.example.org")
        c.mail(SENDER)
        c.rcpt(RCPT)
        code, reply = c.data(msg)
        if code != 250:
            raise RuntimeError(f"{code} {reply!r}")
        return reply.decode().rsplit(" ", 1)[-1]


def maildir_new(data: Path) -> Path:
    return data / "mailboxes" / RCPT / "new"


def delivered(data: Path) -> int:
    try:
        return len(os.listdir(maildir_new(data)))
    except FileNotFoundError:
        return 0


class NewFiles:
    """Names created in a directory, as inotify reports them: waiting costs no CPU and misses nothing.

    (Polling the Maildir with listdir every millisecond took a noticeable share of the two cores
    from the gateway being measured, and its sleep added up to a polling interval to each latency.)
    """

    IN_CREATE, IN_MOVED_TO = 0x100, 0x80

    def __init__(self, path: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or self._libc.inotify_add_watch(self.fd, str(path).encode(), self.IN_CREATE | self.IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {path}")

    def read(self, timeout: float) -> list[str]:
        """Names created since the last read (waits up to `timeout` for the first one)."""
        if not select.select([self.fd], [], [], timeout)[0]:
            return []
        buf, names, i = os.read(self.fd, 1 << 20), [], 0
        while i < len(buf):
            _wd, _mask, _cookie, size = struct.unpack_from("iIII", buf, i)
            names.append(buf[i + 16 : i + 16 + size].rstrip(b"\0").decode())
            i += 16 + size
        return names

    def close(self) -> None:
        os.close(self.fd)


def wait_delivered(data: Path, watch: NewFiles, n: int, timeout: float = 600.0) -> float:
    deadline = time.monotonic() + timeout
    while (have := delivered(data)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {have} of {n} messages delivered")
        while have < n:  # events may count a file twice: the listdir above decides
            names = watch.read(1.0)
            if not names:
                break
            have += len(names)
    return time.perf_counter()


def latency_sink(port: int, msg: bytes, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        send_one(port, msg)
        out.append(time.perf_counter() - t0)
    return out


def latency_gateway(port: int, watch: NewFiles, msg: bytes, n: int) -> tuple[list[float], list[float]]:
    """(SMTP transaction times, times until the copy is in the Maildir)."""
    smtp, e2e = [], []
    for _ in range(n):
        watch.read(0)  # forget earlier events
        t0 = time.perf_counter()
        qid = send_one(port, msg)
        t1 = time.perf_counter()
        marker = f".{qid}-0000."
        seen = False
        while not seen:
            names = watch.read(60.0)
            if not names:
                raise RuntimeError(f"message {qid} was not delivered within 60 s")
            seen = any(marker in name for name in names)
        t2 = time.perf_counter()
        smtp.append(t1 - t0)
        e2e.append(t2 - t0)
    return smtp, e2e


def tree_cpu(pid: int, children: bool = True) -> float:
    """CPU seconds (user + system) used so far by a process and (optionally) its children (the workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or (children and int(fields[1]) == pid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def smtp_source(port: int, msgfile: Path, sessions: int, count: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [SOURCE, "-s", str(sessions), "-m", str(count), "-F", str(msgfile), "-f", SENDER, "-t", RCPT,
         "-M", "bench.example.org", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def start_gateway(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`mailmoat serve` started and listening (its standard error in `log`); exits the bench if it does not start."""
    gw = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, env=env)  # noqa: SIM115
    assert gw.stdout is not None
    for line in gw.stdout:
        if "listening on" in line:
            return gw
    sys.exit(f"gateway did not start, see {log}")


def stop_gateway(gw: subprocess.Popen[str]) -> None:
    gw.send_signal(signal.SIGTERM)
    try:
        gw.wait(60)
    except subprocess.TimeoutExpired:
        gw.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000, help="messages for the 20-client run")
    ap.add_argument("--latency-messages", type=int, default=200, help="messages for the 1-client run")
    ap.add_argument("--size", type=int, default=10 * 1024)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gateway worker processes")
    ap.add_argument("--skip-analyzers", default="", help="comma-separated analyzer names to leave out")
    ap.add_argument("--serve", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:  # the gateway process of this benchmark
        from mailmoat.cli import app

        app(["serve", *args.serve], prog_name="mailmoat")
        return
    for tool in (SINK, SOURCE):
        if not os.path.exists(tool):
            sys.exit(f"{tool} not found: apt-get install postfix")

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="mailmoat-bench-"))
    msg = make_message(args.size)
    msgfile = tmp / "message.eml"
    msgfile.write_bytes(msg)
    sink_port, gw_port = free_port(), free_port()
    sink_cmd = [SINK, *(["-u", "nobody"] if os.geteuid() == 0 else []), f"127.0.0.1:{sink_port}", "256"]
    sink = subprocess.Popen(sink_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = tmp / "var"
    serve_args = ["--data-dir", str(data), "--listen", f"127.0.0.1:{gw_port}", "--domain", "localhost",
                  "--workers", str(args.workers), "--web", "off"]
    env = dict(os.environ)
    if args.skip_analyzers:
        env[SKIP_ENV] = args.skip_analyzers
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", *serve_args]
    else:
        env.pop(SKIP_ENV, None)
        cmd = [MAILMOAT, "serve", *serve_args]
    gw = start_gateway(cmd, tmp / "gateway.log", env)
    try:
        time.sleep(0.3)
        # Warm-up: worker start-up, first SQLite pages, Maildir creation.
        for _ in range(20):
            send_one(gw_port, msg)
            send_one(sink_port, msg)
        while delivered(data) < 20:  # the Maildir exists once the first copy is in
            time.sleep(0.05)
        watch = NewFiles(maildir_new(data))

        n1 = args.latency_messages
        sink_lat = latency_sink(sink_port, msg, n1)
        gw_smtp, gw_e2e = latency_gateway(gw_port, watch, msg, n1)
        base = delivered(data)

        n2 = args.messages
        sink_time = smtp_source(sink_port, msgfile, args.clients, n2)
        cpu0, main0 = tree_cpu(gw.pid), tree_cpu(gw.pid, children=False)
        t0 = time.perf_counter()
        ack_time = smtp_source(gw_port, msgfile, args.clients, n2)
        t_end = wait_delivered(data, watch, base + n2)
        gw_time = t_end - t0
        cpu_per_msg = (tree_cpu(gw.pid) - cpu0) / n2
        listener_per_msg = (tree_cpu(gw.pid, children=False) - main0) / n2
    finally:
        stop_gateway(gw)
        sink.terminate()
        sink.wait(10)

    ms = 1000.0
    sink_rate, gw_rate, ack_rate = n2 / sink_time, n2 / gw_time, n2 / ack_time
    print(f"mailmoat SMTP throughput — {len(msg)} byte message, {args.workers} worker process(es), {os.cpu_count()} CPU(s), "
          f"load average before the run {load_before}")
    if args.skip_analyzers:
        print(f"NOTE: analyzers left out for this run: {args.skip_analyzers} (not the product as shipped)")
    print()
    print(f"1 client, {n1} messages, fresh connection each (ms)        p50      p99     mean")
    print(f"  smtp-sink   SMTP transaction                        {pct(sink_lat, 50) * ms:7.2f}  {pct(sink_lat, 99) * ms:7.2f}  {statistics.mean(sink_lat) * ms:7.2f}")
    print(f"  mailmoat    SMTP transaction (spool fsync → 250)    {pct(gw_smtp, 50) * ms:7.2f}  {pct(gw_smtp, 99) * ms:7.2f}  {statistics.mean(gw_smtp) * ms:7.2f}")
    print(f"  mailmoat    until in the Maildir (all work done)    {pct(gw_e2e, 50) * ms:7.2f}  {pct(gw_e2e, 99) * ms:7.2f}  {statistics.mean(gw_e2e) * ms:7.2f}")
    added50 = (pct(gw_e2e, 50) - pct(sink_lat, 50)) * ms
    added99 = (pct(gw_e2e, 99) - pct(sink_lat, 99)) * ms
    print(f"  added latency (mailmoat delivered − smtp-sink)      {added50:7.2f}  {added99:7.2f}")
    print()
    print(f"{args.clients} clients (smtp-source), {n2} messages                       msg/s")
    print(f"  smtp-sink   (accept and discard)                     {sink_rate:8.1f}")
    print(f"  mailmoat    acknowledged (durably spooled)           {ack_rate:8.1f}")
    print(f"  mailmoat    delivered into the Maildir               {gw_rate:8.1f}   = {100 * gw_rate / sink_rate:.1f}% of smtp-sink")
    cores = os.cpu_count() or 1
    print(f"  mailmoat    CPU per message (listener + workers)     {cpu_per_msg * ms:8.2f} ms"
          f"  → at most {cores / cpu_per_msg:.0f} msg/s on {cores} idle core(s)")
    print(f"                of which the listener (SMTP + spool)   {listener_per_msg * ms:8.2f} ms")
    print()
    ok_rate = gw_rate >= 0.05 * sink_rate
    ok_lat = added50 < 20 and added99 < 100
    print(f"targets: rate ≥ 5% of smtp-sink: {'met' if ok_rate else 'NOT met'}; "
          f"added latency p50 < 20 ms and p99 < 100 ms: {'met' if ok_lat else 'NOT met'}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
