"""Console users and API tokens (administrators only); token secrets are shown once, at creation."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select

from mailmoat.store.audit import audit
from mailmoat.store.web_models import ApiTokenRow, UserRow, WebSessionRow
from mailmoat.web.api.common import RowId, not_found, web
from mailmoat.web.auth import (
    MAX_TOKEN_DAYS,
    Admin,
    AuthError,
    create_token,
    create_user,
    get_user,
    set_password,
    token_dict,
    user_dict,
)

router = APIRouter(tags=["users"])


class UserIn(BaseModel):
    username: str
    password: str
    role: str


class UserPatch(BaseModel):
    role: str | None = None
    disabled: bool | None = None
    password: str | None = None


class TokenIn(BaseModel):
    username: str = Field(default="", description="owner of the token (default: the caller)")
    name: str = ""
    expires_days: float = Field(default=0.0, ge=0, le=MAX_TOKEN_DAYS, allow_inf_nan=False, description="0 = never expires")


@router.get("/users")
def list_users(request: Request, who: Admin) -> dict[str, Any]:
    """Every console user with role and state."""
    with web(request).store.session() as s:
        return {"items": [user_dict(u) for u in s.scalars(select(UserRow).order_by(UserRow.username))]}


@router.post("/users", status_code=201)
async def add_user(request: Request, body: UserIn, who: Admin) -> dict[str, Any]:
    """Create a user (password hashed with Argon2id)."""

    def run() -> dict[str, Any]:
        with web(request).store.session() as s:
            try:
                u = create_user(s, body.username, body.password, body.role)
            except AuthError as exc:
                raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from exc
            audit(s, who.username, "user.create", u.username, source=who.source, detail={"role": u.role})
            return user_dict(u)

    return await asyncio.to_thread(run)


def _admins_left(s: Any, excluding: int) -> int:
    return s.scalar(
        select(func.count()).select_from(UserRow).where(UserRow.role == "admin", UserRow.disabled.is_(False), UserRow.id != excluding)
    ) or 0


@router.patch("/users/{username}")
async def update_user(request: Request, username: str, body: UserPatch, who: Admin) -> dict[str, Any]:
    """Change a user's role, disable or enable it, or set a new password."""

    def run() -> dict[str, Any]:
        with web(request).store.session() as s:
            u = get_user(s, username)
            if u is None:
                raise not_found(f"user {username}")
            changes: dict[str, Any] = {}
            demote = (body.role is not None and body.role != "admin") or body.disabled is True
            if u.role == "admin" and demote and _admins_left(s, u.id) == 0:
                raise HTTPException(409, "refusing to remove the last administrator")
            if body.role is not None:
                if body.role not in ("admin", "analyst", "auditor"):
                    raise HTTPException(422, f"unknown role {body.role!r}")
                u.role = changes["role"] = body.role
            if body.disabled is not None:
                u.disabled = changes["disabled"] = body.disabled
                if body.disabled:
                    s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == u.id))
            if body.password is not None:
                try:
                    set_password(s, u, body.password)
                except AuthError as exc:
                    raise HTTPException(422, str(exc)) from exc
                changes["password"] = "changed"
            audit(s, who.username, "user.update", u.username, source=who.source, detail=changes)
            return user_dict(u)

    return await asyncio.to_thread(run)


@router.delete("/users/{username}")
def delete_user(request: Request, username: str, who: Admin) -> dict[str, Any]:
    """Delete a user with its tokens and sessions."""
    with web(request).store.session() as s:
        u = get_user(s, username)
        if u is None:
            raise not_found(f"user {username}")
        if u.role == "admin" and _admins_left(s, u.id) == 0:
            raise HTTPException(409, "refusing to delete the last administrator")
        s.execute(delete(ApiTokenRow).where(ApiTokenRow.user_id == u.id))
        s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == u.id))
        s.delete(u)
        audit(s, who.username, "user.delete", username, source=who.source)
    return {"username": username, "deleted": True}


@router.get("/tokens")
def list_tokens(request: Request, who: Admin) -> dict[str, Any]:
    """API tokens (never their secrets)."""
    with web(request).store.session() as s:
        names = {u.id: u.username for u in s.scalars(select(UserRow))}
        rows = s.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id)).all()
        return {"items": [token_dict(t, names.get(t.user_id, "")) for t in rows]}


@router.post("/tokens", status_code=201)
def add_token(request: Request, body: TokenIn, who: Admin) -> dict[str, Any]:
    """Create an API token for a user; the secret is in this answer only."""
    with web(request).store.session() as s:
        u = get_user(s, body.username or who.username)
        if u is None:
            raise not_found(f"user {body.username}")
        row, secret = create_token(s, u, body.name, body.expires_days)
        audit(s, who.username, "token.create", str(row.id), source=who.source, detail={"user": u.username, "name": row.name})
        out = token_dict(row, u.username)
    out["token"] = secret
    return out


@router.delete("/tokens/{token_id}")
def revoke_token(request: Request, token_id: RowId, who: Admin) -> dict[str, Any]:
    """Revoke an API token."""
    with web(request).store.session() as s:
        row = s.get(ApiTokenRow, token_id)
        if row is None:
            raise not_found(f"token {token_id}")
        row.revoked = True
        audit(s, who.username, "token.revoke", str(token_id), source=who.source)
    return {"id": token_id, "revoked": True}
