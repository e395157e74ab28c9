"""Scan throughput: `mailmoat scan` (one worker, all cores) against rspamd on the same files.

usage: .venv/bin/python bench/scan_throughput.py CORPUS_DIR [--limit N] [--no-rspamd] [--peers DIR]

Prints messages/second and CPU milliseconds per message for `mailmoat scan --workers 1` and
`--workers 0` (one process per core), then for Debian's rspamd started from the offline kit in
../shared/peers (copied to a temp dir, moved to free loopback ports) with 8 concurrent HTTP
clients POSTing every file to /checkv2, and the ratio of the two rates. mailmoat figures are
given for the whole command (start-up included) and for steady state (start-up, measured
separately on one message, subtracted).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PEERS = ROOT.parent / "shared" / "peers"
CLIENTS = 8
TINY = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: warm-up\r\n\r\nhello\r\n"


@dataclass
class Run:
    label: str
    messages: int
    wall: float
    cpu: float
    startup_wall: float = 0.0
    startup_cpu: float = 0.0
    errors: int = 0
    client_cpu: float = 0.0  # CPU of the load generator (HTTP clients), for the rspamd runs

    @property
    def rate(self) -> float:
        return self.messages / self.wall if self.wall > 0 else 0.0

    @property
    def steady_rate(self) -> float:
        w = self.wall - self.startup_wall
        return self.messages / w if w > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.messages if self.messages else 0.0

    @property
    def steady_cpu_ms(self) -> float:
        return 1000 * (self.cpu - self.startup_cpu) / self.messages if self.messages else 0.0


def corpus_files(root: Path, limit: int) -> list[Path]:
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and not p.name.upper().startswith(("LICENSE", "README"))
    )
    return files[:limit] if limit else files


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_scan(paths: list[str], workers: int, data_dir: Path) -> tuple[float, float, list[str]]:
    """Wall seconds, CPU seconds (the command and its worker processes) and the output lines."""
    cmd = [
        sys.executable,
        "-c",
        "from mailmoat.cli import main; main()",
        "scan",
        *paths,
        "--format",
        "jsonl",
        "--workers",
        str(workers),
        "--data-dir",
        str(data_dir),
    ]
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    if proc.returncode not in (0, 1):
        sys.exit(f"mailmoat scan failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return wall, cpu, proc.stdout.decode().splitlines()


def bench_mailmoat(corpus_dir: Path, n: int, workers: int, label: str, tmp: Path) -> Run:
    tiny = tmp / "tiny.eml"
    tiny.write_bytes(TINY)
    s_wall, s_cpu, _ = run_scan([str(tiny)], workers, tmp / "var")
    wall, cpu, lines = run_scan([str(corpus_dir)], workers, tmp / "var")
    rows = [json.loads(x) for x in lines if x.strip()]
    if len(rows) != n:
        sys.exit(f"expected {n} verdicts, got {len(rows)}")
    errors = sum(1 for r in rows if "error" in r)
    return Run(label, n, wall, cpu, s_wall, s_cpu, errors)


# ---------------------------------------------------------------- rspamd


def proc_cpu(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def process_tree(root_pid: int) -> list[int]:
    pids = [root_pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == root_pid:
                pids.append(int(entry.name))
    return pids


class Rspamd:
    """The offline rspamd kit, copied to a temp dir and moved to free loopback ports."""

    def __init__(self, peers: Path, tmp: Path, workers: str) -> None:
        self.dir = tmp / "peers"
        shutil.copytree(peers, self.dir)
        os.chmod(tmp, 0o755)  # rspamd runs as _rspamd and must reach its config
        self.port, ctrl, dns = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
        for p in self.dir.rglob("*"):
            if p.is_file() and p.suffix in ("", ".conf", ".inc", ".sh", ".py"):
                text = p.read_text(errors="surrogateescape")
                new = (
                    text.replace("21333", str(self.port))
                    .replace("21334", str(ctrl))
                    .replace("53530", str(dns))
                )
                if new != text:
                    p.write_text(new, errors="surrogateescape")
        for sub in ("results", "rspamd/var/db", "rspamd/var/run", "rspamd/var/log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [str(self.dir / "rspamd/start.sh"), workers], capture_output=True, text=True, check=False
        )
        self.master = int((self.dir / "rspamd/var/run/master.pid").read_text().strip())
        print(f"  {out.stdout.strip()}", flush=True)
        if not self.ping():
            self.stop()
            sys.exit(f"rspamd did not start: {out.stderr[-2000:]}")

    def ping(self) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/ping")
            return b"pong" in c.getresponse().read()
        except OSError:
            return False

    def stop(self) -> None:
        subprocess.run([str(self.dir / "rspamd/stop.sh")], capture_output=True, check=False)
        pidfile = self.dir / "tools/fakedns.pid"
        if pidfile.exists():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pidfile.read_text().strip()), 15)


def post_all(port: int, bodies: list[bytes], clients: int) -> int:
    """POST every body to /checkv2 from `clients` keep-alive connections; returns failed requests."""
    nxt = iter(range(len(bodies)))
    lock = threading.Lock()
    failed = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                break
            try:
                conn.request("POST", "/checkv2", body=bodies[i], headers={"Content-Type": "message/rfc822"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200 or b'"action"' not in data:
                    failed[0] += 1
            except (OSError, http.client.HTTPException):
                failed[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failed[0]


def bench_rspamd(peers: Path, bodies: list[bytes], workers: str, label: str, tmp: Path) -> Run:
    r = Rspamd(peers, tmp, workers)
    try:
        post_all(r.port, bodies[: min(50, len(bodies))], CLIENTS)  # warm-up (maps, regexps compiled lazily)
        pids = process_tree(r.master)
        cpu0 = proc_cpu(pids)
        own0 = time.process_time()
        t0 = time.perf_counter()
        failed = post_all(r.port, bodies, CLIENTS)
        wall = time.perf_counter() - t0
        cpu = proc_cpu(pids) - cpu0
        own = time.process_time() - own0
    finally:
        r.stop()
    return Run(label, len(bodies), wall, cpu, errors=failed, client_cpu=own)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--limit", type=int, default=0, help="only the first N files (sorted by path)")
    ap.add_argument("--no-rspamd", action="store_true")
    ap.add_argument("--peers", type=Path, default=DEFAULT_PEERS)
    args = ap.parse_args()
    files = corpus_files(args.corpus, args.limit)
    if not files:
        sys.exit(f"no files under {args.corpus}")
    cores = os.cpu_count() or 1
    print(
        f"corpus {args.corpus}: {len(files)} messages, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB; {cores} cores"
    )
    with tempfile.TemporaryDirectory(prefix="mailmoat-bench-") as t:
        tmp = Path(t)
        corpus_dir = tmp / "corpus"
        corpus_dir.mkdir()
        for i, f in enumerate(files):  # same files, same order, for every contender
            (corpus_dir / f"{i:06d}.eml").symlink_to(f.resolve())
        runs: list[Run] = []
        for workers, label in ((1, "mailmoat scan, 1 worker"), (0, f"mailmoat scan, {cores} workers")):
            print(f"running {label} ...", flush=True)
            runs.append(bench_mailmoat(corpus_dir, len(files), workers, label, tmp))
        rspamd_runs: list[Run] = []
        if not args.no_rspamd:
            bodies = [f.read_bytes() for f in files]
            for workers, label in (("1", "rspamd, 1 worker"), ("default", f"rspamd, {cores} workers")):
                print(f"running {label} ({CLIENTS} HTTP clients) ...", flush=True)
                rspamd_runs.append(bench_rspamd(args.peers, bodies, workers, label, tmp / f"r{workers}"))
    print()
    print(
        f"{'contender':28} {'msg/s':>9} {'CPU ms/msg':>11} {'steady msg/s':>13} {'steady CPU ms':>14} {'errors':>7}"
    )
    for r in runs:
        print(
            f"{r.label:28} {r.rate:9.1f} {r.cpu_ms:11.2f} {r.steady_rate:13.1f} {r.steady_cpu_ms:14.2f} {r.errors:7d}"
        )
    for r in rspamd_runs:
        print(f"{r.label:28} {r.rate:9.1f} {r.cpu_ms:11.2f} {r.rate:13.1f} {r.cpu_ms:14.2f} {r.errors:7d}")
    for r in rspamd_runs:
        print(
            f"  ({r.label}: the {CLIENTS} HTTP clients used {1000 * r.client_cpu / r.messages:.2f} ms CPU per message)"
        )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")
    if rspamd_runs:
        ours, theirs = runs[-1], rspamd_runs[-1]
        print()
        print(
            f"ratio, all cores: mailmoat/rspamd = {ours.rate / theirs.rate:.3f} (whole command), "
            f"{ours.steady_rate / theirs.rate:.3f} (steady state); target >= 0.333"
        )
        one, one_r = runs[0], rspamd_runs[0]
        print(
            f"ratio, one worker: mailmoat/rspamd = {one.rate / one_r.rate:.3f} (whole command), "
            f"{one.steady_rate / one_r.rate:.3f} (steady state)"
        )
        print(
            f"CPU-bound ratio (rspamd CPU ms / mailmoat CPU ms per message) = {theirs.cpu_ms / ours.steady_cpu_ms:.3f}: "
            "the rate ratio on idle, equal cores"
        )


if __name__ == "__main__":
    main()
