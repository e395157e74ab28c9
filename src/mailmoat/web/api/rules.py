"""Detection rules: list (built-in and site), enable/disable, upload a validated rule file with its samples, check."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Request, UploadFile

from mailmoat.config import Settings
from mailmoat.rules import BUILTIN_DIR, load_dir
from mailmoat.rules.engine import duplicates
from mailmoat.web.api.common import record_async, web
from mailmoat.web.auth import Admin, Reader

router = APIRouter(prefix="/rules", tags=["rules"])

DISABLED_FILE = "rules-disabled.txt"
MAX_RULE = 256 * 1024
MAX_SAMPLE = 5 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def site_dir(settings: Settings) -> Path:
    """The site rule directory: `rules.site_dir`, or `<data_dir>/rules` when it is not configured."""
    return Path(settings.rules.site_dir) if settings.rules.site_dir else settings.data_path / "rules"


def disabled_file(settings: Settings) -> Path:
    return settings.data_path / DISABLED_FILE


def read_disabled(settings: Settings) -> set[str]:
    """Rule ids disabled in the configuration or in the console (one id a line in `<data_dir>/rules-disabled.txt`)."""
    out = set(settings.rules.disabled)
    try:
        text = disabled_file(settings).read_text(encoding="utf-8")
    except OSError:
        return out
    out.update(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return out


def _rows(settings: Settings) -> tuple[list[dict[str, Any]], list[str]]:
    disabled = read_disabled(settings)
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for d, source in ((BUILTIN_DIR, "builtin"), (site_dir(settings), "site")):
        if not d.is_dir():
            continue
        found, errs = load_dir(d)
        errors.extend(str(e) for e in errs)
        for r in found:
            rows.append(
                {
                    "id": r.id, "name": r.name, "description": r.description, "symbol": r.symbol, "score": r.score,
                    "severity": r.severity, "group": r.group, "tags": list(r.tags), "source": source,
                    "file": r.path.name, "enabled": r.id not in disabled, "expression": r.expression,
                }
            )
    return rows, errors


@router.get("")
def list_rules(request: Request, who: Reader) -> dict[str, Any]:
    """Every rule file (built-in and site) with its symbol, score and whether it is enabled."""
    rows, errors = _rows(web(request).settings)
    return {"items": rows, "errors": errors, "site_dir": str(site_dir(web(request).settings))}


async def _set_enabled(request: Request, rule_id: str, enabled: bool, who: Any) -> dict[str, Any]:
    settings: Settings = web(request).settings
    rows, _ = await asyncio.to_thread(_rows, settings)
    if rule_id not in {r["id"] for r in rows}:
        raise HTTPException(404, f"rule {rule_id} not found")
    if enabled and rule_id in settings.rules.disabled:
        raise HTTPException(409, f"rule {rule_id} is disabled in the configuration file (rules.disabled)")
    path = disabled_file(settings)

    def write() -> None:
        current = read_disabled(settings) - set(settings.rules.disabled)
        current = current | {rule_id} if not enabled else current - {rule_id}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{i}\n" for i in sorted(current)), encoding="utf-8")
        tmp.replace(path)

    await asyncio.to_thread(write)
    await record_async(request, who, "rule.enable" if enabled else "rule.disable", rule_id)
    return {"id": rule_id, "enabled": enabled}


@router.post("/{rule_id}/enable")
async def enable_rule(request: Request, rule_id: str, who: Admin) -> dict[str, Any]:
    """Enable a rule (takes effect on the gateway's next rule reload)."""
    return await _set_enabled(request, rule_id, True, who)


@router.post("/{rule_id}/disable")
async def disable_rule(request: Request, rule_id: str, who: Admin) -> dict[str, Any]:
    """Disable a rule (takes effect on the gateway's next rule reload)."""
    return await _set_enabled(request, rule_id, False, who)


def _validate(settings: Settings, tmp: Path, rule_name: str) -> tuple[list[Any], list[str]]:
    from mailmoat.analyzers import registry
    from mailmoat.cli.rules import check_dirs

    rules, problems = check_dirs([tmp], settings, run_samples=True)
    others: list[Any] = []
    sd = site_dir(settings)
    for d in (BUILTIN_DIR, sd):
        if d.is_dir():
            found, _ = load_dir(d)
            others.extend(r for r in found if not (d == sd and r.path.name == rule_name))
    reserved = {s.name for c in registry.analyzer_classes() for s in c.symbols}
    _, dup = duplicates([*others, *rules], reserved)
    new_ids = {r.id for r in rules} | {r.symbol for r in rules}
    problems.extend(str(e) for e in dup if any(i in str(e) for i in new_ids))
    return rules, [p.replace(str(tmp) + "/", "") for p in problems]


@router.post("/upload", status_code=201)
async def upload_rule(
    request: Request,
    who: Admin,
    file: Annotated[UploadFile, File(description="one rule file (.yml)")],
    samples: Annotated[list[UploadFile] | None, File(description="the sample messages it names (.eml)")] = None,
) -> dict[str, Any]:
    """Validate a rule file with its samples (YAML, expression, samples hit and miss, no clashes); then install it."""
    name = Path(file.filename or "").name
    if not name.endswith((".yml", ".yaml")) or not _NAME.match(name):
        raise HTTPException(422, "upload a .yml rule file with a plain file name")
    text = await file.read(MAX_RULE + 1)
    if len(text) > MAX_RULE:
        raise HTTPException(413, "rule file too large")
    sample_data: dict[str, bytes] = {}
    for smp in samples or []:
        sname = Path(smp.filename or "").name
        if not _NAME.match(sname):
            raise HTTPException(422, f"bad sample file name {smp.filename!r}")
        data = await smp.read(MAX_SAMPLE + 1)
        if len(data) > MAX_SAMPLE:
            raise HTTPException(413, f"sample {sname} too large")
        sample_data[sname] = data
    settings: Settings = web(request).settings

    def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as t:
            tmp = Path(t)
            (tmp / name).write_bytes(text)
            (tmp / "samples").mkdir()
            for sname, data in sample_data.items():
                (tmp / "samples" / sname).write_bytes(data)
            rules, problems = _validate(settings, tmp, name)
            if problems or not rules:
                raise HTTPException(422, {"problems": problems or ["no rule found in the file"]})
            sd = site_dir(settings)
            (sd / "samples").mkdir(parents=True, exist_ok=True)
            for sname in sample_data:
                shutil.copyfile(tmp / "samples" / sname, sd / "samples" / sname)
            staged = sd / f".{name}.tmp"
            shutil.copyfile(tmp / name, staged)
            staged.replace(sd / name)  # the rules analyzer never reads a half-written file
            return {"id": rules[0].id, "symbol": rules[0].symbol, "file": str(sd / name), "samples": sorted(sample_data)}

    result = await asyncio.to_thread(run)
    await record_async(request, who, "rule.upload", result["id"], result)
    return result


@router.post("/check")
async def check_rules(request: Request, who: Admin, samples: bool = True) -> dict[str, Any]:
    """Check every loaded rule (built-in and site): files, expressions, clashes, and (by default) the samples."""
    from mailmoat.cli.rules import check_dirs

    settings: Settings = web(request).settings
    dirs = [BUILTIN_DIR] + ([site_dir(settings)] if site_dir(settings).is_dir() else [])
    rules, problems = await asyncio.to_thread(check_dirs, dirs, settings, samples)
    return {"ok": not problems, "rules": len(rules), "problems": problems}
