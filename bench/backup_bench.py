"""Backup under load: how long `mailmoat backup` takes on a filled data dir, and what it costs the mail flow.

usage: .venv/bin/python bench/backup_bench.py [--fill 5000] [--window 15] [--workers N]

A `mailmoat serve` on embedded defaults is filled with `--fill` messages (10 KB each, Postfix's
`smtp-source`, 20 clients). Then 20 clients send without pause: the delivered rate is read over
`--window` seconds, then over the whole life of a `mailmoat backup` of the data dir started
beside it (their ratio is what the backup costs the gateway, measured side by side in one run).
It prints both rates, the backup's time, size and rate, and checks the copy: the messages its
record holds, each one's raw file present in the copy. Needs `make bench-deps` (smtp-source).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smtp_throughput import (
    MAILMOAT,
    SOURCE,
    NewFiles,
    delivered,
    free_port,
    maildir_new,
    make_message,
    send_one,
    smtp_source,
    start_gateway,
    stop_gateway,
    wait_delivered,
)


def flow(port: int, data: Path, watch: NewFiles, msgfile: Path, n: int) -> float:
    """Delivered messages per second for `n` more messages from 20 clients."""
    base = delivered(data)
    t0 = time.perf_counter()
    smtp_source(port, msgfile, 20, n)
    return n / (wait_delivered(data, watch, base + n) - t0)


def check_copy(dest: Path) -> tuple[int, int]:
    """(messages in the copy's record, of which the raw file is missing in the copy)."""
    with sqlite3.connect(dest / "mailmoat.db") as conn:
        paths = [r[0] for r in conn.execute("SELECT raw_path FROM messages")]
    return len(paths), sum(1 for p in paths if not (p.startswith(str(dest)) and Path(p).is_file()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fill", type=int, default=5000, help="messages in the data dir before the backup")
    ap.add_argument("--window", type=float, default=15.0, help="seconds the rate without a backup is read over")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if not os.path.exists(SOURCE):
        sys.exit(f"{SOURCE} not found: apt-get install postfix")
    tmp = Path(tempfile.mkdtemp(prefix="mailmoat-backup-bench-"))
    msg = make_message(10 * 1024)
    msgfile = tmp / "message.eml"
    msgfile.write_bytes(msg)
    data, port = tmp / "var", free_port()
    gw = start_gateway(
        [MAILMOAT, "serve", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}", "--domain", "localhost",
         "--workers", str(args.workers), "--web", "off"],
        tmp / "gateway.log",
    )
    try:
        send_one(port, msg)
        while delivered(data) < 1:
            time.sleep(0.05)
        watch = NewFiles(maildir_new(data))
        fill_rate = flow(port, data, watch, msgfile, args.fill)
        # A stream that outlasts both measurements; stopped once they are done.
        stream = subprocess.Popen(
            [SOURCE, "-s", "20", "-m", "10000000", "-F", str(msgfile), "-f", "sender@example.org", "-t", "bench@localhost",
             "-M", "bench.example.org", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(3.0)  # the stream at its pace
            d0, t0 = delivered(data), time.perf_counter()
            time.sleep(args.window)
            alone = (delivered(data) - d0) / (time.perf_counter() - t0)
            dest = tmp / "backup"
            d1, t1 = delivered(data), time.perf_counter()
            out = subprocess.run([MAILMOAT, "backup", str(dest), "--format", "json", "--data-dir", str(data)],
                                 capture_output=True, text=True)
            seconds = time.perf_counter() - t1
            during = (delivered(data) - d1) / seconds
        finally:
            stream.terminate()
            stream.wait(30)
    finally:
        stop_gateway(gw)
    if out.returncode != 0:
        sys.exit(f"backup failed: {out.stderr}")
    report = json.loads(out.stdout)
    in_record, missing = check_copy(Path(report["dest"]))
    print(f"mailmoat backup under load — {os.cpu_count()} CPU(s), {args.workers} worker process(es), 10 KB messages")
    print(f"  data dir filled with {args.fill} messages at {fill_rate:.1f} msg/s")
    print(f"  backup: {seconds:.1f} s (the command, start-up included) for {report['messages']} messages in the record, "
          f"{report['files']} files, {report['bytes'] / 1e6:.1f} MB ({report['bytes'] / 1e6 / seconds:.1f} MB/s)")
    print(f"  copy checked: {in_record} messages in its record, {missing} raw files missing")
    print(f"  gateway, 20 clients sending without pause: {alone:.1f} msg/s delivered over {args.window:g} s alone, "
          f"{during:.1f} msg/s while the backup ran = {during / alone:.0%}")
    print(f"  (scratch data in {tmp})")


if __name__ == "__main__":
    main()
