"""`mailmoat rules check [DIR]` validates rule files offline; `mailmoat rules list` shows what is loaded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from mailmoat.cli.common import ConfigOpt, DataDirOpt, DbOpt, load_settings
from mailmoat.config import Settings
from mailmoat.model import Envelope, Finding, Message
from mailmoat.rules import BUILTIN_DIR, Rule, RuleError, load_dir, missing_samples, sample_results
from mailmoat.rules.activation import FIELDS
from mailmoat.rules.engine import disabled_ids, duplicates, site_dir_for
from mailmoat.rules.functions import FUNCTION_NAMES


def sample_evaluator(settings: Settings) -> tuple[object, asyncio.AbstractEventLoop]:
    """Parse a sample and run the analyzers of the stages before the rules, as the gateway does."""
    from mailmoat.analyzers import registry
    from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
    from mailmoat.analyzers.rules import RulesAnalyzer
    from mailmoat.analyzers.runner import run_analyzers
    from mailmoat.parse import parse

    analyzers = [a for a in registry.build(AnalyzerEnv(settings=settings)) if a.stage < RulesAnalyzer.stage]
    loop = asyncio.new_event_loop()

    def evaluate(raw: bytes) -> tuple[Message, Envelope, list[Finding]]:
        message = parse(raw, qr=settings.qr)
        envelope = Envelope(mail_from="", rcpt_tos=[a.addr for a in message.to if a.addr], size=len(raw))
        ctx = AnalysisContext(message=message, envelope=envelope, settings=settings)
        prior = loop.run_until_complete(run_analyzers(analyzers, ctx, settings.policy.analyzer_timeout))
        return message, envelope, prior

    return evaluate, loop


def check_dirs(
    dirs: list[Path], settings: Settings, run_samples: bool = True
) -> tuple[list[Rule], list[str]]:
    """Every rule under the directories and every problem found (empty list = all good)."""
    from mailmoat.analyzers import registry

    problems: list[str] = []
    rules: list[Rule] = []
    for d in dirs:
        if not d.is_dir():
            problems.append(f"{d}: not a directory")
            continue
        found, errors = load_dir(d)
        rules.extend(found)
        problems.extend(str(e) for e in errors)
    reserved = {s.name for c in registry.analyzer_classes() for s in c.symbols}
    _, dup_errors = duplicates(rules, reserved)
    problems.extend(str(e) for e in dup_errors)
    # A bad score or sample name was refused when the rule was read (engine.parse_rule).
    for r in rules:
        problems.extend(f"{r.path}: {p}" for p in missing_samples(r))
    if run_samples and rules:
        evaluate, loop = sample_evaluator(settings)
        # A site rule may read a built-in rule's finding: its samples run with the built-ins too
        # (loaded here only when the directories checked do not already hold them).
        among = rules
        if not any(d.resolve() == BUILTIN_DIR.resolve() for d in dirs):
            ids = {r.id for r in rules}
            among = rules + [r for r in load_dir(BUILTIN_DIR)[0] if r.id not in ids]
        try:
            for res in sample_results(rules, evaluate, among):  # type: ignore[arg-type]
                if res.ok:
                    continue
                want = "hit" if res.expected else "miss"
                if res.got is None:
                    problems.append(f"{res.rule.path}: sample {res.sample}: {res.error}")
                else:
                    problems.append(f"{res.rule.path}: sample {res.sample} must {want} but did not")
        finally:
            loop.close()
    return rules, problems


def default_dirs(settings: Settings) -> list[Path]:
    """Built-in rules, and the site directory when it is configured or exists under the data dir."""
    site = site_dir_for(settings)
    return [BUILTIN_DIR] + ([site] if settings.rules.site_dir or site.is_dir() else [])


def register(app: typer.Typer) -> None:
    rules_app = typer.Typer(help="Detection rules as data: validate and list.", no_args_is_help=True)
    app.add_typer(rules_app, name="rules")

    @rules_app.command("check")
    def check(
        directory: Annotated[
            Path | None, typer.Argument(help="Rule directory (default: built-in + site rules)")
        ] = None,
        no_samples: Annotated[
            bool, typer.Option("--no-samples", help="Skip running the sample messages")
        ] = False,
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Validate rules offline: YAML, unknown fields, expression compiles, samples hit and miss."""
        settings = load_settings(config, data_dir, db)
        dirs = [directory] if directory is not None else default_dirs(settings)
        rules, problems = check_dirs(dirs, settings, run_samples=not no_samples)
        for p in problems:
            typer.echo(f"error: {p}", err=True)
        n_samples = sum(len(r.samples_hit) + len(r.samples_miss) for r in rules)
        if problems:
            typer.echo(f"{len(problems)} problem(s) in {len(rules)} rule(s)")
            raise typer.Exit(1)
        typer.echo(f"ok: {len(rules)} rule(s), {n_samples} sample(s) checked in {', '.join(map(str, dirs))}")

    @rules_app.command("list")
    def list_rules(
        fields: Annotated[
            bool, typer.Option("--fields", help="List the message fields and functions instead")
        ] = False,
        fmt: Annotated[str, typer.Option("--format", help="text or json")] = "text",
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Rules that would be loaded (built-in and site), with symbol, score and state."""
        settings = load_settings(config, data_dir, db)
        if fields:
            for name, (_, doc) in FIELDS.items():
                typer.echo(f"{name:18} {doc}")
            typer.echo("functions: " + ", ".join(sorted(FUNCTION_NAMES)))
            return
        dirs = default_dirs(settings)
        disabled = disabled_ids(settings.rules, settings.data_path)
        rows = []
        errors: list[RuleError] = []
        for d in dirs:
            found, errs = load_dir(d)
            errors.extend(errs)
            for r in found:
                rows.append(
                    {
                        "id": r.id,
                        "symbol": r.symbol,
                        "score": r.score,
                        "severity": r.severity,
                        "group": r.group,
                        "source": "builtin" if d == BUILTIN_DIR else "site",
                        "enabled": r.id not in disabled,
                        "name": r.name,
                    }
                )
        if fmt == "json":
            typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        else:
            for row in rows:
                state = "" if row["enabled"] else " (disabled)"
                typer.echo(
                    f"{row['id']:40} {row['symbol']:32} {row['score']:>5g} {row['severity']:8} "
                    f"{row['source']}{state}  {row['name']}"
                )
        for e in errors:
            typer.echo(f"error: {e}", err=True)
        if errors:
            raise typer.Exit(1)
