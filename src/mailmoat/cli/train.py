"""`mailmoat train`: build the classifier model from directories of .eml files or from administrators' verdicts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated

import typer

from mailmoat.cli.common import ConfigOpt, DataDirOpt, DbOpt, fail, load_settings
from mailmoat.config import QrSettings, Settings

MAX_MESSAGE = 50 * 1024 * 1024  # larger files are skipped: nobody trains on a 50 MB attachment
_CHUNK = 16


def iter_messages(dirs: list[Path]) -> Iterator[Path]:
    """Every regular, non-hidden file under the directories (recursively), in a stable order."""
    for d in dirs:
        if d.is_file():
            yield d
            continue
        for root, subdirs, files in os.walk(d):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield Path(root) / name


_qr: QrSettings | None = None


def _init_worker(qr: QrSettings | None) -> None:
    global _qr
    _qr = qr


# (path, tokens or None, error, language, year of the Date header or None)
Tokenised = tuple[str, list[str] | None, str, str, int | None]


def tokens_of_file(path: str) -> Tokenised:
    """(path, tokens, error, language, year): parse and tokenise one file; never raises."""
    from mailmoat.classify import message_tokens
    from mailmoat.classify.era import year_of
    from mailmoat.classify.language import language_of
    from mailmoat.parse import parse

    try:
        p = Path(path)
        if p.stat().st_size > MAX_MESSAGE:
            return path, None, "too large", "", None
        raw = p.read_bytes()
    except OSError as exc:
        return path, None, f"cannot read: {exc.strerror or exc}", "", None
    try:
        message = parse(raw, qr=_qr)
        return path, sorted(message_tokens(message)), "", language_of(message), year_of(message.date)
    except Exception as exc:  # a parser bug must not stop a training run of thousands of files
        return path, None, f"{type(exc).__name__}: {exc}", "", None


def tokenise_files(paths: list[str], qr: QrSettings | None, jobs: int) -> Iterator[Tokenised]:
    if jobs <= 1 or len(paths) < 2 * _CHUNK:
        _init_worker(qr)
        yield from map(tokens_of_file, paths)
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(qr,)) as pool:
        yield from pool.map(tokens_of_file, paths, chunksize=_CHUNK)


def train_dirs(
    settings: Settings,
    ham: list[Path],
    spam: list[Path],
    phish: list[Path] | None = None,
    *,
    add: bool = False,
    jobs: int = 1,
    qr: bool = True,
) -> dict[str, int]:
    """Train (or, with add, extend) the model from directories; returns counts; saves the model.

    Phishing given apart from bulk spam gets a view of its own in the model (see
    `mailmoat.classify.bayes`); given together under `spam`, both are read as one kind. The
    model also counts the languages it learnt (`mailmoat.classify.language`). When the ham given
    is years older than the spam, a warning says so (`mailmoat.classify.era`).
    """
    from mailmoat.classify import BayesModel, Classifier, model_path
    from mailmoat.classify.era import era_warning

    path = model_path(settings)
    clf = Classifier.open(path) if add else Classifier(path, BayesModel(), fresh=True)
    counts = {"ham": 0, "spam": 0, "phish": 0, "skipped": 0}
    labelled = [
        (str(p), name) for name, dirs in (("ham", ham), ("spam", spam), ("phish", phish or [])) for p in iter_messages(dirs)
    ]
    label = dict(labelled)
    qr_settings = settings.qr if qr else None
    years: dict[str, list[int]] = {"ham": [], "spam": [], "phish": []}  # label -> years of its Date headers
    for file, tokens, error, language, year in tokenise_files([p for p, _ in labelled], qr_settings, jobs):
        if tokens is None:
            counts["skipped"] += 1
            typer.echo(f"skipped {file}: {error}", err=True)
            continue
        clf.learn_tokens(set(tokens), label[file], name=file, language=language)
        counts[label[file]] += 1
        if year is not None:
            years[label[file]].append(year)
    if not clf.trained:
        raise ValueError(
            f"a model needs both ham and spam or phishing (have {clf.model.nham} ham, "
            f"{clf.model.nspam} spam and phishing); nothing saved"
        )
    clf.save()
    for kind, name in (("spam", "spam"), ("phish", "phishing")):
        if warning := era_warning(years["ham"], years[kind], name):
            typer.echo(warning, err=True)
    counts["model_ham"] = clf.model.nham
    counts["model_spam"] = clf.model.nspam
    counts["tokens"] = len(clf.model)
    return counts


def _status_text(settings: Settings) -> str:
    """`mailmoat train --status`: the console's classifier line, for a terminal."""
    import time

    from mailmoat.classify import model_status
    from mailmoat.classify.language import coverage

    st = model_status(settings)
    lines = [f"model: {st['path']}"]
    if not st["enabled"]:
        lines.append("the classifier is switched off (classifier.enabled = false)")
    if st["error"]:
        lines.append(f"cannot be read: {st['error']}")
    elif not st["trained"]:
        lines.append("no trained model yet: train one with `mailmoat train --ham DIR --spam DIR [--phish DIR]`")
    else:
        m = st["messages"]
        learnt = (
            f"learnt {m['ham']} ham, {m['spam']} spam and {m['phish']} phishing; {st['tokens']} tokens"
            if m else "older format (converted when `mailmoat serve` starts)"
        )
        lines.append(f"{learnt}; saved {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(st['saved_at']))}")
    if st["languages"]:
        summary, warnings = coverage(st["languages"])
        lines += [summary, *warnings]
    if st["near_copies"] is not None:
        lines.append(f"near copies: {st['near_copies']} messages learnt as spam or phishing are remembered")
    every, after, sent = st["learn_every_hours"], st["learn_delivered_after_days"], st["learn_outbound_after_days"]
    also = [f"untouched deliveries older than {after:g} days"] if after > 0 else []
    also += [f"mail its accounts sent out more than {sent:g} days ago"] if sent > 0 else []
    lines.append(
        (f"the gateway learns from the store every {every:g} h" if every > 0 else "the gateway does not learn from the store")
        + (f", with {' and '.join(also)} as ham" if every > 0 and also else "")
    )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        ham: Annotated[list[Path] | None, typer.Option("--ham", help="Directory (or file) of legitimate .eml messages; repeatable")] = None,
        spam: Annotated[list[Path] | None, typer.Option("--spam", help="Directory (or file) of spam .eml messages; repeatable")] = None,
        phish: Annotated[list[Path] | None, typer.Option("--phish", help="Directory (or file) of phishing .eml messages, kept apart from bulk spam; repeatable")] = None,
        from_store: Annotated[bool, typer.Option("--from-store", help="Learn released messages as ham and recalled ones as phishing")] = False,
        delivered_as_ham: Annotated[str, typer.Option(
            "--delivered-as-ham", metavar="AGE",
            help="With --from-store: also learn as ham mail delivered untouched (score under 2, never recalled) "
                 "and received at least AGE ago (3d, 12h ...)",
        )] = "",
        outbound_as_ham: Annotated[str, typer.Option(
            "--outbound-as-ham", metavar="AGE",
            help="With --from-store: also learn as ham the mail the site's own accounts sent out (score under 2, "
                 "never recalled, no compromise incident on the account) at least AGE ago (3d ...)",
        )] = "",
        max_delivered: Annotated[int, typer.Option("--max-delivered", help="At most this many delivered (and this many sent) messages, newest first")] = 5000,
        add: Annotated[bool, typer.Option("--add", help="Add to the existing model instead of replacing it")] = False,
        jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parser processes (default: CPU count)")] = 0,
        no_qr: Annotated[bool, typer.Option("--no-qr", help="Skip QR decoding while training (faster)")] = False,
        status: Annotated[bool, typer.Option("--status", help="Show the model (what it has learnt, when saved) and train nothing")] = False,
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Train the statistical classifier; the model is kept under the data dir and used by scan and the gateway."""
        from mailmoat.classify import model_path

        settings = load_settings(config, data_dir, db)
        if status:
            typer.echo(_status_text(settings))
            return
        ham_dirs, spam_dirs, phish_dirs = list(ham or []), list(spam or []), list(phish or [])
        if (delivered_as_ham or outbound_as_ham) and not from_store:
            raise fail(f"{'--delivered-as-ham' if delivered_as_ham else '--outbound-as-ham'} goes with --from-store")
        if not ham_dirs and not spam_dirs and not phish_dirs and not from_store:
            raise fail("give --ham DIR and --spam DIR (and/or --phish DIR), or --from-store")
        for d in ham_dirs + spam_dirs + phish_dirs:
            if not d.exists():
                raise fail(f"no such file or directory: {d}")
        if ham_dirs or spam_dirs or phish_dirs:
            from mailmoat.classify import BayesModel
            from mailmoat.classify.language import coverage

            try:
                counts = train_dirs(
                    settings, ham_dirs, spam_dirs, phish_dirs, add=add, jobs=jobs or (os.cpu_count() or 1), qr=not no_qr
                )
            except ValueError as exc:
                raise fail(str(exc)) from exc
            typer.echo(
                f"learnt {counts['ham']} ham, {counts['spam']} spam and {counts['phish']} phishing "
                f"({counts['skipped']} skipped); "
                f"model: {counts['model_ham']} ham, {counts['model_spam']} spam and phishing, {counts['tokens']} tokens "
                f"→ {model_path(settings)}"
            )
            # The model's counts: with --add, the languages of earlier runs too.
            summary, warnings = coverage(BayesModel.describe(model_path(settings))["languages"])
            typer.echo(summary)
            for line in warnings:
                typer.echo(line, err=True)
        if from_store:
            from sqlalchemy.exc import SQLAlchemyError

            from mailmoat.classify.store_learning import train_from_store
            from mailmoat.recall.selection import SelectionError, parse_time

            try:
                before = parse_time(delivered_as_ham) if delivered_as_ham else None
                sent_before = parse_time(outbound_as_ham) if outbound_as_ham else None
            except SelectionError as exc:
                raise fail(str(exc)) from exc
            try:
                sc = train_from_store(settings, before, max_delivered, outbound_before=sent_before)
            except (FileNotFoundError, ValueError) as exc:
                raise fail(str(exc)) from exc
            except SQLAlchemyError as exc:
                raise fail(f"cannot read the store: {exc}") from exc
            typer.echo(
                f"from the store: learnt {sc['ham']} released as ham, {sc['phish']} recalled as phishing"
                + (f", {sc['delivered']} delivered as ham" if before is not None else "")
                + (f", {sc['outbound']} sent out as ham" if sent_before is not None else "")
                + f" ({sc['already']} already learnt, {sc['missing_raw']} without a retained raw message"
                + (f", {sc['failed']} that could not be learnt" if sc["failed"] else "")
                + "); "
                f"model: {sc['model_ham']} ham, {sc['model_spam']} spam and phishing → {model_path(settings)}"
            )
