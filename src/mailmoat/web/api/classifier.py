"""The statistical classifier's state: whether a model is trained, what it has learnt, how it keeps learning."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mailmoat.classify import model_status
from mailmoat.web.api.common import web
from mailmoat.web.auth import Reader

router = APIRouter(prefix="/classifier", tags=["classifier"])


@router.get("")
def classifier_status(request: Request, who: Reader) -> dict[str, Any]:
    """Model file, messages learnt per label (ham, spam, phish), tokens, when it was saved, and the
    learning schedule; `trained` is false on a fresh install, until `mailmoat train` has run."""
    state = web(request)
    return model_status(state.settings, state.store)
