"""What reading a message by several views costs the classifier: time per message, model size and load.

    .venv/bin/python bench/classifier_views.py /path/to/corpora [-j N] [--sample N] [--rounds N]

Trains one model on the train halves of `bench/detection_eval.py`'s split (ham, spam and phish
kept apart), saves and reloads it, then classifies a sample of the test halves twice in
alternating rounds: with every view (the shipped behaviour) and with the pooled view alone (as if
no kind had enough mail for a view of its own). Prints milliseconds per message for both, their
ratio, the model file's size and its load time. (Memory: `bench/classifier_model.py` measures it
in fresh processes; measured here, after training, it read what the allocator had kept.)
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_eval as de  # the same discovery and split

from mailmoat.classify import bayes


def main(argv: list[str] | None = None) -> int:
    ap = de.corpus_parser(__doc__)
    ap.add_argument("--sample", type=int, default=600, help="test messages to classify (default 600)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    sets = de.discover_or_say(args.corpus_dir)
    if not sets:
        return 2
    train, test, tokens = de.tokenised_sample(sets, args.jobs, args.sample)
    model = de.trained_model(train, tokens)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bayes.model"
        model.save(path)
        size = path.stat().st_size
        del model
        gc.collect()
        t0 = time.perf_counter()
        model = bayes.BayesModel.load(path)
        load_s = time.perf_counter() - t0
    sample = [set(t) for p in test if (t := tokens[p]) is not None]
    shipped = bayes.MIN_VIEW
    took = {"every view": 0.0, "pooled view alone": 0.0}
    views_used: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, min_view in (("every view", shipped), ("pooled view alone", 10**12)):
            bayes.MIN_VIEW = min_view
            t0 = time.perf_counter()
            for toks in sample:
                got = model.classify_tokens(toks)
                if min_view == shipped:
                    views_used[got.view] = views_used.get(got.view, 0) + 1
            took[name] += time.perf_counter() - t0
    bayes.MIN_VIEW = shipped
    n = len(sample) * args.rounds
    print(f"model: {len(model)} tokens, file {size / 1e6:.1f} MB, load {load_s:.2f} s\n")
    print("| reading | ms per message |")
    print("|---|---:|")
    for name, secs in took.items():
        print(f"| {name} | {secs / n * 1000:.2f} |")
    print(f"\nratio every view / pooled alone: {took['every view'] / took['pooled view alone']:.2f}")
    print("view given as evidence (pooled, or the kind view above it): " + ", ".join(f"{k} {v // args.rounds}" for k, v in sorted(views_used.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
