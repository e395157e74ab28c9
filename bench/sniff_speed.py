"""Time the one file-type sniffer (`parse.filetype.sniff`) on real attachment payloads.

    .venv/bin/python bench/sniff_speed.py ../shared/corpora/phishing_pot/phish [--messages 1000] [--repeat 5]

Every attachment payload of the first N messages (sorted by file name) is sniffed in both modes:
as a body part reads it and as a file the recipient opens (`html_anywhere`). The figure is the
best of `--repeat` passes, in microseconds per payload, with the types found; where the two modes
disagree the payloads are counted.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from mailmoat.parse import parse
from mailmoat.parse.filetype import sniff


def payloads(folder: Path, limit: int) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(folder.iterdir())[:limit]:
        if not path.is_file():
            continue
        msg = parse(path.read_bytes())
        out += [p.payload for p in msg.attachments if p.payload]
    return out


def best_of(data: list[bytes], repeat: int, html_anywhere: bool) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for d in data:
            sniff(d, html_anywhere=html_anywhere)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a directory of messages, one per file")
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = payloads(args.folder, args.messages)
    if not data:
        raise SystemExit(f"no attachment payloads in the first {args.messages} messages of {args.folder}")
    for mode in (False, True):
        took = best_of(data, args.repeat, mode)
        print(f"html_anywhere={mode}: {len(data)} payloads, {took / len(data) * 1e6:.1f} µs per payload (best of {args.repeat})")
    kinds = Counter(sniff(d, html_anywhere=True)[1] or "unknown" for d in data)
    print("types:", ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    differ = sum(1 for d in data if sniff(d)[1] != sniff(d, html_anywhere=True)[1])
    print(f"payloads the two modes type differently: {differ}")


if __name__ == "__main__":
    main()
