"""Run mailmoat.parse over every file under a corpus directory: speed, defects by kind, slowest, exceptions.

Usage: .venv/bin/python bench/eval_parse.py CORPUS_DIR [--qr] [--no-enrich] [--limit N]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
import traceback
from pathlib import Path

import mailmoat.parse as parse_pkg
from mailmoat.config import QrSettings
from mailmoat.parse import parse


def _kind(defect: str) -> str:
    return defect.split(" ", 1)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--qr", action="store_true", help="also run QR decoding (default: parse only, QR off)")
    ap.add_argument("--no-enrich", action="store_true", help="skip the document-URL (and QR) hooks: the MIME/HTML core only")
    ap.add_argument("--limit", type=int, default=0, help="stop after N files (0 = all)")
    args = ap.parse_args(argv)
    if args.no_enrich:
        parse_pkg._HOOKS.update({"mailmoat.parse.qr": None, "mailmoat.parse.documents": None})
    qr = QrSettings() if args.qr else QrSettings(enabled=False)
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file() and p.name not in ("LICENSE", "README.md"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        print(f"no files under {args.corpus}", file=sys.stderr)
        return 2
    parse(b"Subject: warm-up\r\n\r\nhello http://example.com\r\n", qr=qr)  # imports and tables
    defects: collections.Counter[str] = collections.Counter()
    with_defects = 0
    per_corpus: dict[str, list[float]] = collections.defaultdict(list)
    cpu_ms: list[tuple[float, Path, int]] = []
    exceptions: list[tuple[Path, str]] = []
    total_bytes = 0
    counts = collections.Counter[str]()
    wall0 = time.perf_counter()
    cpu_total = 0.0
    for path in files:
        raw = path.read_bytes()
        total_bytes += len(raw)
        c0 = time.process_time()
        try:
            msg = parse(raw, qr=qr)
        except BaseException as exc:  # counting what escapes is the point
            exceptions.append((path, "".join(traceback.format_exception_only(type(exc), exc)).strip()))
            continue
        spent = (time.process_time() - c0) * 1000
        cpu_total += spent
        cpu_ms.append((spent, path, len(raw)))
        rel = path.relative_to(args.corpus)
        per_corpus["/".join(rel.parts[:2]) if len(rel.parts) > 2 else rel.parts[0]].append(spent)
        if msg.defects:
            with_defects += 1
        defects.update({_kind(d) for d in msg.defects})
        counts["parts"] += len(msg.parts)
        counts["urls"] += len(msg.urls)
        counts["images"] += len(msg.images)
        counts["attached_messages"] += len(msg.attached_messages)
        counts["qr_codes"] += len(msg.qr_codes)
    wall = time.perf_counter() - wall0
    n = len(cpu_ms)
    times = sorted(t for t, _, _ in cpu_ms)
    hooks = "off" if args.no_enrich else ("documents+qr" if args.qr else "documents")
    print(f"corpus: {args.corpus}  files: {len(files)}  bytes: {total_bytes / 1e6:.1f} MB  enrichment: {hooks}")
    print(f"wall: {wall:.2f} s ({len(files) / wall:.0f} files/s, including file reads)")
    if n:
        print(
            f"CPU per message: mean {cpu_total / n:.3f} ms  median {statistics.median(times):.3f} ms  "
            f"p95 {times[int(n * 0.95) - 1]:.3f} ms  p99 {times[int(n * 0.99) - 1]:.3f} ms  max {times[-1]:.1f} ms"
        )
        print(f"parse rate on one core: {n / (cpu_total / 1000):.0f} messages/s of CPU")
    print("per corpus/label (messages, mean CPU ms, median CPU ms):")
    for key in sorted(per_corpus):
        ts = per_corpus[key]
        print(f"  {key:32} {len(ts):6}  {sum(ts) / len(ts):7.3f}  {statistics.median(ts):7.3f}")
    print("totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"messages with defects: {with_defects} of {n}")
    print("defects by kind (messages having it):")
    for kind, count in defects.most_common():
        print(f"  {count:6}  {kind}")
    print("10 slowest (CPU ms, bytes, file):")
    for spent, path, size in sorted(cpu_ms, reverse=True)[:10]:
        print(f"  {spent:8.2f}  {size:9}  {path}")
    print(f"exceptions: {len(exceptions)}")
    for path, text in exceptions[:20]:
        print(f"  {path}: {text}")
    return 1 if exceptions else 0


if __name__ == "__main__":
    raise SystemExit(main())
