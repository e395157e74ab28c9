"""Decompression bombs against the attachment unpacker: time and peak RSS stay bounded (default limits).

    .venv/bin/python bench/bombs.py

Each bomb is built first, written to a temp file, then unpacked in a fresh child process so that the
child's peak RSS (VmHWM) measures the unpacker alone (plus the interpreter and the bomb's bytes).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GIB = 1 << 30
MIB = 1 << 20


def _zeros_stream(total: int) -> io.RawIOBase:
    class Zeros(io.RawIOBase):
        def __init__(self) -> None:
            self.left = total

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    return Zeros()


def build(case: str) -> tuple[bytes, str, int]:
    """(bomb bytes, attachment name, bytes it would expand to)."""
    from tests.support import attachgen as g

    if case == "zip-1gib":
        return g.zip_bomb(GIB), "report.zip", GIB
    if case == "nested-42":
        levels, copies, base = 5, 16, 16 * MIB
        return g.nested_bomb(levels, copies, base), "42.zip", base * copies**levels
    if case == "tar-gz-1gib":
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w|") as tf:
            info = tarfile.TarInfo("zeros.bin")
            info.size = GIB
            tf.addfile(info, _zeros_stream(GIB))
        return buf.getvalue(), "backup.tar.gz", GIB
    if case == "bz2-1gib":
        comp = bz2.BZ2Compressor(9)
        out = bytearray()
        block = bytes(16 * MIB)
        for _ in range(GIB // len(block)):
            out += comp.compress(block)
        out += comp.flush()
        return bytes(out), "data.bin.bz2", GIB
    if case == "7z-256mib":
        import py7zr

        buf = io.BytesIO()
        with py7zr.SevenZipFile(buf, "w") as z:
            z.writef(io.BytesIO(bytes(256 * MIB)), "zeros.bin")
        return buf.getvalue(), "data.7z", 256 * MIB
    if case == "many-members":
        return g.zip_bytes({f"f{i}.txt": b"x" for i in range(20_000)}), "many.zip", 20_000
    raise SystemExit(f"unknown case {case}")


CASES = ["zip-1gib", "nested-42", "tar-gz-1gib", "bz2-1gib", "7z-256mib", "many-members"]


def _hwm_kib() -> int:
    """Peak RSS of this process (VmHWM: unlike ru_maxrss it is not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(path: str, name: str) -> None:
    from tests.support import attachgen as g

    from mailmoat.attach.scan import expand_message
    from mailmoat.config import AttachmentSettings

    data = Path(path).read_bytes()
    msg = g.message([(name, data)])
    base = _hwm_kib()
    t0 = time.perf_counter()
    exp = expand_message(msg, AttachmentSettings())
    elapsed = time.perf_counter() - t0
    peak = _hwm_kib()
    print(json.dumps({
        "seconds": round(elapsed, 3),
        "rss_before_mib": round(base / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "files": len(exp.files),
        "expanded_mib": round(sum(f.size for f in exp.files if f.depth) / MIB, 1),
        "events": sorted({e.kind for e in exp.events}),
    }))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2, metavar=("PATH", "NAME"))
    ap.add_argument("cases", nargs="*", default=CASES)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"{'case':14} {'bomb':>10} {'claims':>12} {'time s':>7} {'rss0 MiB':>9} {'peak MiB':>9} {'read MiB':>9}  events")
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            data, name, claims = build(case)
            path = Path(tmp) / name
            path.write_bytes(data)
            out = subprocess.run([sys.executable, __file__, "--child", str(path), name], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            claim = f"{claims / GIB:.0f} GiB" if claims >= GIB else (f"{claims / MIB:.0f} MiB" if claims >= MIB else f"{claims} files")
            print(f"{case:14} {len(data) / 1024:>8.0f}KB {claim:>12} {r['seconds']:>7.2f} {r['rss_before_mib']:>9.0f} "
                  f"{r['rss_peak_mib']:>9.0f} {r['expanded_mib']:>9.1f}  {','.join(r['events'])}")


if __name__ == "__main__":
    main()
