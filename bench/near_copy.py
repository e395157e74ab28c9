"""Near-copy memory: what a lookup costs beside the classifier, and what the file costs to keep and load.

    .venv/bin/python bench/near_copy.py /path/to/corpora [-j N] [--sample N]

Tokenises the train halves of `bench/detection_eval.py`'s split and a sample of the test halves
(beforehand, in N processes). Remembers every train-half spam and phishing message, as `mailmoat
train` does, then, in turn for three rounds, times on the sample: the statistical model's
classification of the same tokens (trained on the train halves), the sketch of a message, and
the lookup of the sketch in the memory. The same with the memory filled up to its capacity
(`nearcopy.MAX_ENTRIES`) with random sketches. Prints milliseconds per message (fastest round),
the lookup's share of the classifier's time, and for both memories the file size, the load time
and the memory the loaded structure holds (tracemalloc). Then, per corpus and label of the sample,
the share of messages whose closest remembered message is at least 0.5 ... 0.9 similar, and the
highest similarity seen: for ham, how close legitimate mail comes to the line. `--sample 0` takes
every test message.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import tracemalloc
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_eval as de  # the same discovery and split

from mailmoat.classify import nearcopy


def _timed(fn, items, rounds: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for it in items:
            fn(it)
        best = min(best, time.perf_counter() - t0)
    return best / max(len(items), 1) * 1000.0


def _file_costs(memory: nearcopy.NearCopies, where: Path) -> tuple[float, float, float]:
    """(file MB, load seconds, MB held once loaded)."""
    path = where / "near_copies.json"
    memory.save(path)
    t0 = time.perf_counter()
    nearcopy.NearCopies.load(path)
    load_s = time.perf_counter() - t0
    tracemalloc.start()
    kept = nearcopy.NearCopies.load(path)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(kept) == len(memory)
    return path.stat().st_size / 1e6, load_s, held / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = de.corpus_parser(__doc__)
    ap.add_argument("--sample", type=int, default=600, help="test messages to time and compare (0: all)")
    args = ap.parse_args(argv)

    sets = de.discover_or_say(args.corpus_dir)
    if not sets:
        return 2
    train, test, tokens = de.tokenised_sample(sets, args.jobs, args.sample or 10**9)
    model = de.trained_model(train, tokens)
    model.compact()
    memory = nearcopy.NearCopies()
    for (_, label), path in train:
        toks = tokens[path]
        values = nearcopy.sketch(toks) if toks is not None and label != "ham" else None
        if values is not None:
            memory.add(path, label, values)
    # Timed on the first 600 of the sample; compared (the last table) on all of it.
    sets_of = [frozenset(t) for t in (tokens[p] for p in test[:600]) if t is not None]
    sketches = [s for s in (nearcopy.sketch(t) for t in sets_of) if s is not None]
    threshold = nearcopy.DEFAULT_SIMILARITY

    full = nearcopy.NearCopies()
    for key, e in memory.entries.items():
        full.add(key, e.label, e.values, e.added)
    rng = random.Random(1)
    while len(full) < nearcopy.MAX_ENTRIES:
        full.add(f"random-{len(full)}", "spam", array("Q", sorted(rng.getrandbits(64) for _ in range(nearcopy.K))))

    classify_ms = _timed(model.classify_tokens, sets_of)
    sketch_ms = _timed(nearcopy.sketch, sets_of)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, mem in (("train-half spam and phishing", memory), ("filled to capacity", full)):
            match_ms = _timed(lambda v, m=mem: m.best(v, threshold), sketches) * len(sketches) / len(sets_of)
            size_mb, load_s, held_mb = _file_costs(mem, Path(tmp))
            rows.append((name, len(mem), match_ms, size_mb, load_s, held_mb))

    print(f"## Near-copy memory (timed on {len(sets_of)} test messages, {len(sketches)} long enough to sketch; fastest of 3 rounds)\n")
    print(f"classifier, same tokens: {classify_ms:.3f} ms/message; sketch: {sketch_ms:.3f} ms/message\n")
    print("| memory | messages | lookup ms/message | sketch + lookup, share of classify | file MB | load s | held MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n, match_ms, size_mb, load_s, held_mb in rows:
        share = (sketch_ms + match_ms) / classify_ms if classify_ms else 0.0
        print(f"| {name} | {n} | {match_ms:.3f} | {share:.0%} | {size_mb:.1f} | {load_s:.2f} | {held_mb:.1f} |")
    print("\n| corpus | label | msgs | sketched | ≥ 0.5 | ≥ 0.6 | ≥ 0.7 | ≥ 0.8 | ≥ 0.9 | highest |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    cell_of = {str(p): cell for cell, files in sets.items() for p in files}
    best: dict[tuple[str, str], list[float | None]] = {}
    for path in test:
        toks = tokens[path]
        values = nearcopy.sketch(toks) if toks is not None else None
        found = memory.best(values, 0.0) if values is not None else None
        best.setdefault(cell_of[path], []).append(None if values is None else found.similarity if found else 0.0)
    for (corpus, label), sims in sorted(best.items()):
        known = [s for s in sims if s is not None]
        shares = " | ".join(de.pct(sum(s >= c for s in known), len(sims)) for c in (0.5, 0.6, 0.7, 0.8, 0.9))
        print(f"| {corpus} | {label} | {len(sims)} | {len(known)} | {shares} | {max(known, default=0.0):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
