"""The classifier model's file formats side by side: file size, load time, resident memory, classify time.

    .venv/bin/python bench/classifier_model.py /path/to/corpora [-j N] [--sample N] [--runs N]

Trains one model on the train halves of `bench/detection_eval.py`'s split (ham, spam and phish
kept apart) and saves it twice: as the JSON that versions before the compact format wrote
(mailmoat-bayes/2, written the same way) and in the compact format (mailmoat-bayes/3). Each
reading then runs in a fresh process, so that memory freed by training or by another load is not
handed out again, and reports the load time, the resident memory the load added (VmRSS before
and after) and at its peak (VmHWM), and milliseconds per message to classify a sample of the test
halves (tokenised beforehand; the fastest of three rounds). The readings:

- JSON as loaded before: the parsed JSON kept as its dict of lists, checked and looked up by
  token string, which is what the loader before the compact format did;
- JSON read now: `BayesModel.load` of the same file, which converts it on load;
- compact: `BayesModel.load` of the compact file;
- compact, mapped: `BayesModel.load(shared=True)`, as the gateway's workers load it: the file is
  mapped copy-on-write, so its pages are the page cache's, shared by every process that maps it.
  Resident memory counts those pages too; "private memory added" (RssAnon) is what each further
  process costs.

All three must give the same probabilities, views and clues on the sample; the script says so
(or exits 1). With `--runs N` each reading runs N times in turn and the medians are printed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_eval as de  # the same discovery and split

from mailmoat.classify import bayes

READINGS = ("JSON as loaded before", "JSON read now", "compact", "compact, mapped")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _load_as_before(path: Path) -> bayes.BayesModel:
    """The previous loader: parse, check every row, keep the parsed dict as the model's counts."""
    d = json.loads(path.read_text(encoding="utf-8"))
    counts = d["tokens"]
    if not all(type(v) is list and len(v) == bayes.NCELLS and all(type(x) is int for x in v) for v in counts.values()):
        raise ValueError("damaged model")
    m = bayes.BayesModel()
    m.n = [int(x) for x in d["n"]]
    # A model's overlay is exactly that dict, looked up by token as the previous version did.
    m._new = counts
    return m


def child(reading: str, model_file: str, sample_file: str) -> dict[str, Any]:
    """One reading, in this (fresh) process."""
    sample = [set(t) for t in json.loads(Path(sample_file).read_text(encoding="utf-8"))]
    gc.collect()
    rss0, anon0 = _status_mb("VmRSS"), _status_mb("RssAnon")
    t0 = time.perf_counter()
    if reading == READINGS[0]:
        model = _load_as_before(Path(model_file))
    else:
        model = bayes.BayesModel.load(Path(model_file), shared=reading == READINGS[3])
    load_s = time.perf_counter() - t0
    rss1, peak, anon1 = _status_mb("VmRSS"), _status_mb("VmHWM"), _status_mb("RssAnon")
    rounds = []
    for _ in range(3):
        t0 = time.perf_counter()
        results = [model.classify_tokens(t) for t in sample]
        rounds.append(time.perf_counter() - t0)
    answers = repr([(r.prob, r.view, [(c.token, c.prob, c.seen) for c in r.clues]) for r in results])
    return {
        "tokens": len(model),
        "load_s": load_s,
        "rss_mb": rss1 - rss0,
        "anon_mb": anon1 - anon0,
        "peak_mb": peak - rss0,
        "ms_per_msg": min(rounds) / len(sample) * 1000,
        "answers": hashlib.sha256(answers.encode()).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(child(*argv[1:4])))
        return 0
    ap = de.corpus_parser(__doc__)
    ap.add_argument("--sample", type=int, default=400, help="test messages to classify (default 400)")
    ap.add_argument("--runs", type=int, default=1, help="runs of every reading, in turn (medians printed)")
    args = ap.parse_args(argv)
    sets = de.discover_or_say(args.corpus_dir)
    if not sets:
        return 2
    train, test, tokens = de.tokenised_sample(sets, args.jobs, args.sample)
    t0 = time.perf_counter()
    model = de.trained_model(train, tokens)
    learn_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="mailmoat-model-") as tmp:
        old, new, sample = Path(tmp) / "bayes.json", Path(tmp) / "bayes.model", Path(tmp) / "sample.json"
        sampled = [t for p in test if (t := tokens[p]) is not None]
        sample.write_text(json.dumps(sampled), encoding="utf-8")
        ntok = len(model)
        t0 = time.perf_counter()
        # What the previous save wrote: every token by name (a trained model's overlay holds them all).
        doc = {"format": bayes.FORMAT_V2, "labels": bayes.LABELS, "scripts": bayes.SCRIPTS, "n": model.n, "tokens": model._new}
        old.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True), encoding="utf-8")
        old_save_s = time.perf_counter() - t0
        del doc
        t0 = time.perf_counter()
        model.save(new)  # hashes, sorts and packs the tokens first
        new_save_s = time.perf_counter() - t0
        del model, tokens
        gc.collect()

        files = {READINGS[0]: old, READINGS[1]: old, READINGS[2]: new, READINGS[3]: new}
        got: dict[str, list[dict[str, Any]]] = {r: [] for r in READINGS}
        for _ in range(args.runs):
            for reading in READINGS:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", reading, str(files[reading]), str(sample)],
                    check=True, capture_output=True, text=True,
                )
                got[reading].append(json.loads(out.stdout))
        sizes = {r: files[r].stat().st_size / 1e6 for r in READINGS}

    def med(reading: str, key: str) -> float:
        return statistics.median(run[key] for run in got[reading])

    print(
        f"model: {ntok:,} tokens from {len(train):,} train-half messages (learnt in {learn_s:.1f} s); "
        f"{len(sampled)} test messages classified; "
        f"{args.runs} run(s) of each reading, medians\n"
    )
    print(f"save: JSON {old_save_s:.1f} s, compact {new_save_s:.1f} s (hashing, sorting and packing the tokens included)\n")
    rows = [
        ("file size", "MB", "sizes"),
        ("load", "s", "load_s"),
        ("resident memory added", "MB", "rss_mb"),
        ("private memory added", "MB", "anon_mb"),
        ("resident memory at peak of load", "MB", "peak_mb"),
        ("classify", "ms/message", "ms_per_msg"),
    ]
    print(f"| | {' | '.join(READINGS)} | before / compact |")
    print("|---|" + "---:|" * (len(READINGS) + 1))
    for name, unit, key in rows:
        vals = [sizes[r] if key == "sizes" else med(r, key) for r in READINGS]
        fmt = "{:.2f}" if key in ("load_s", "ms_per_msg") else "{:.1f}"
        print(f"| {name} ({unit}) | " + " | ".join(fmt.format(v) for v in vals) + f" | {vals[0] / vals[2]:.2f} |")
    answers = {run["answers"] for r in READINGS for run in got[r]}
    tokens_seen = {run["tokens"] for r in READINGS for run in got[r]}
    same = len(answers) == 1 and tokens_seen == {ntok}
    print(f"\nsame probabilities, views and clues in every reading: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
