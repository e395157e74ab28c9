"""What a fresh install holds: every engine but the statistical classifier, which has no model yet.

    .venv/bin/python bench/fresh_install_eval.py /path/to/corpora [-j N] [--half test|train] [--symbols A,B,...]

The same corpora, split and scan as `bench/detection_eval.py`, but with no classifier model (and no
DNS): what an administrator gets on the day of installation, before `mailmoat train`. Prints, per
corpus and label, the share of messages at or above the tag and the quarantine lines of the default
policy, and the share on which each of the given symbols (default: the most frequent) fired.
`--half train` reads the train halves, which is what the rules and heuristics may be tuned on;
the test halves (default) are the figure to report.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_eval as de  # the same discovery, split and scan


def _init(data_dir: str) -> None:
    de._init_scan(data_dir, None)


def _scan(path: str) -> tuple[str, dict[str, Any]]:
    return path, de._scan_one(Path(path).read_bytes())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("corpus_dir", type=Path)
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=de.SEED)
    ap.add_argument("--half", choices=("test", "train"), default="test")
    ap.add_argument("--symbols", default="", help="comma-separated symbols to report (default: the 8 most frequent per cell)")
    args = ap.parse_args(argv)

    sets = de.discover(args.corpus_dir)
    if not sets:
        print(f"no <corpus>/<ham|spam|phish>/ directories under {args.corpus_dir}", file=sys.stderr)
        return 2
    cell_of: dict[str, tuple[str, str]] = {}
    for cell, files in sorted(sets.items()):
        train, test = de.split(files, args.seed)
        for p in train if args.half == "train" else test:
            cell_of[str(p)] = cell
    with tempfile.TemporaryDirectory() as data_dir, ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(data_dir,)) as pool:
        results = dict(pool.map(_scan, list(cell_of), chunksize=16))

    n: Counter[tuple[str, str]] = Counter()
    tag: Counter[tuple[str, str]] = Counter()
    held: Counter[tuple[str, str]] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    fired: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for path, r in results.items():
        cell = cell_of[path]
        n[cell] += 1
        errors[cell] += r["action"] == "error"
        tag[cell] += r["action"] in ("tag", "quarantine", "reject")
        held[cell] += r["action"] in de.DETECTED
        for sym in {s for s, score, _ in r["findings"] if score > 0}:
            fired[cell][sym] += 1
    wanted = [s for s in args.symbols.split(",") if s]
    print(f"## No classifier model, {args.half} halves\n")
    print("| corpus | label | msgs | tag or more | quarantine or reject | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for cell in sorted(n):
        print(f"| {cell[0]} | {cell[1]} | {n[cell]} | {de.pct(tag[cell], n[cell])} | {de.pct(held[cell], n[cell])} | {errors[cell]} |")
    print("\nSymbols (share of messages, positive score only):\n")
    for cell in sorted(n):
        shown = [(s, fired[cell][s]) for s in wanted] if wanted else fired[cell].most_common(8)
        print(f"- **{cell[0]}/{cell[1]}**: " + ", ".join(f"{s} {de.pct(k, n[cell])}" for s, k in shown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
