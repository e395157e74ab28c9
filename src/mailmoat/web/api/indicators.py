"""Threat indicators: list what the intel analyzer loads, add one, import a file (txt, csv, MISP, STIX); recall on match."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from pydantic import BaseModel

from mailmoat.config import Settings
from mailmoat.intel.loaders import KINDS, Indicator, LoadError, load_file, normalise, too_wide
from mailmoat.web.api.common import record_async, web
from mailmoat.web.auth import Actor, Reader

router = APIRouter(prefix="/indicators", tags=["indicators"])

CONSOLE_FILE = "console.csv"
MAX_IMPORT = 20 * 1024 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def intel_dir(settings: Settings) -> Path:
    """Where indicators added in the console are written (the intel analyzer reads it with `intel.dirs`)."""
    return settings.data_path / "intel"


def _sources(settings: Settings) -> list[Path]:
    paths = [intel_dir(settings)] + [Path(p) for p in settings.intel.dirs]
    seen: set[Path] = set()
    out = []
    for p in paths:
        rp = p.resolve()
        if rp not in seen:
            seen.add(rp)
            out.append(p)
    return out


def _files(settings: Settings) -> list[Path]:
    files: list[Path] = []
    for base in _sources(settings):
        if base.is_file():
            files.append(base)
        elif base.is_dir():
            files.extend(sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")))
    return files


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _auto_kind(ind: Indicator) -> tuple[str, str] | None:
    """An indicator as the (kind, value) automatic recall understands (IP lists do not recall mail)."""
    if ind.kind in ("domain", "url", "sha256"):
        return ind.kind, ind.value
    if ind.kind == "sender":
        return "sender", ind.value.lstrip("@")
    return None


async def _recall(request: Request, inds: list[Indicator], source: str) -> list[dict[str, Any]]:
    from mailmoat.recall.auto import on_indicators

    pairs = list(dict.fromkeys(p for p in (_auto_kind(i) for i in inds) if p is not None))
    if not pairs:
        return []
    outcomes = await on_indicators(web(request).recall_engine(), pairs, source=source)
    return [
        {"job_id": o.job_id, "state": o.state, "copies": o.copies, "indicator": o.detail.get("indicator", "")}
        for o in outcomes
        if o.state not in ("none", "off")
    ]


@router.get("")
def list_indicators(
    request: Request,
    who: Reader,
    kind: str = "",
    q: Annotated[str, Query(description="substring of the value")] = "",
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Indicators in the console's list and in every configured intel directory, with their file and line."""
    settings: Settings = web(request).settings
    items: list[dict[str, Any]] = []
    files = []
    for f in _files(settings):
        skipped: list[str] = []  # networks too wide to apply, which the intel analyzer leaves out too
        try:
            inds = load_file(f, skipped)
            files.append({"file": str(f), "count": len(inds), "error": "", "skipped": skipped})
        except LoadError as exc:
            files.append({"file": str(f), "count": 0, "error": str(exc), "skipped": []})
            continue
        for i in inds:
            if (kind and i.kind != kind) or (q and q.lower() not in i.value):
                continue
            items.append({"kind": i.kind, "value": i.value, "file": str(f), "ref": i.ref, "source": i.source})
    return {"total": len(items), "items": items[offset : offset + limit], "files": files, "dir": str(intel_dir(settings))}


class IndicatorIn(BaseModel):
    kind: str
    value: str
    note: str = ""
    recall: bool = True


@router.post("", status_code=201)
async def add_indicator(request: Request, body: IndicatorIn, who: Actor) -> dict[str, Any]:
    """Add one indicator to the console list; delivered mail that carries it is recalled by the recall policy."""
    kind = body.kind.strip().lower()
    if kind not in KINDS:
        raise HTTPException(422, f"kind must be one of {', '.join(KINDS)}")
    value = normalise(kind, body.value)
    if value is None:
        raise HTTPException(422, f"{body.value!r} is not a valid {kind}")
    if why := too_wide(kind, value):
        raise HTTPException(422, why)
    settings: Settings = web(request).settings
    path = intel_dir(settings) / CONSOLE_FILE

    def append() -> bool:
        old = path.read_text(encoding="utf-8") if path.is_file() else "kind,value,source\n"
        existing = {(r[0], r[1]) for r in csv.reader(io.StringIO(old)) if len(r) >= 2}
        if (kind, value) in existing:
            return False
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([kind, value, (body.note or f"added by {who.username}")[:200]])
        _write_atomic(path, (old + buf.getvalue()).encode("utf-8"))
        return True

    added = await asyncio.to_thread(append)
    await record_async(request, who, "indicator.add", f"{kind}:{value}", {"kind": kind, "value": value, "new": added}, note=body.note)
    ind = Indicator(kind=kind, value=value, file=str(path))
    recalls = await _recall(request, [ind], f"added by {who.username}") if body.recall else []
    return {"kind": kind, "value": value, "added": added, "file": str(path), "recalls": recalls}


@router.post("/import", status_code=201)
async def import_indicators(
    request: Request,
    who: Actor,
    file: Annotated[UploadFile, File(description="txt, csv, MISP JSON or STIX 2.1 bundle")],
    recall: Annotated[bool, Form()] = True,
) -> dict[str, Any]:
    """Import an indicator file into the intel directory after checking that it loads; then recall matching mail."""
    data = await file.read(MAX_IMPORT + 1)
    if len(data) > MAX_IMPORT:
        raise HTTPException(413, "indicator file too large")
    name = _SAFE.sub("_", Path(file.filename or "indicators.txt").name).strip("._") or "indicators.txt"
    settings: Settings = web(request).settings

    def check_and_store() -> tuple[list[Indicator], list[str], Path]:
        skipped: list[str] = []  # networks too wide to apply: stored with the file, never loaded from it
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / name
            probe.write_bytes(data)
            try:
                inds = load_file(probe, skipped)
            except LoadError as exc:
                raise HTTPException(422, str(exc).replace(str(probe), name)) from exc
        if not inds:
            raise HTTPException(422, f"{name}: no valid indicators found" + "".join(f"; {s}" for s in skipped[:5]))
        target = intel_dir(settings) / f"import-{time.strftime('%Y%m%d-%H%M%S')}-{name}"
        _write_atomic(target, data)
        return inds, skipped, target

    inds, skipped, target = await asyncio.to_thread(check_and_store)
    counts: dict[str, int] = {}
    for i in inds:
        counts[i.kind] = counts.get(i.kind, 0) + 1
    await record_async(request, who, "indicator.import", target.name, {"file": str(target), "counts": counts, "skipped": skipped})
    recalls = await _recall(request, inds, f"import {target.name}") if recall else []
    return {"file": str(target), "count": len(inds), "counts": counts, "skipped": skipped, "recalls": recalls}


