"""The SMTP envelope of one accepted message: who sent it, to whom, from where, and its direction."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ulid import ULID


class Direction(StrEnum):
    INBOUND = "inbound"
    INTERNAL = "internal"
    OUTBOUND = "outbound"


def new_id() -> str:
    """A sortable unique id (ULID) used for messages, jobs and incidents."""
    return str(ULID())


@dataclass
class Envelope:
    mail_from: str
    rcpt_tos: list[str]
    id: str = field(default_factory=new_id)
    peer_ip: str = ""
    helo: str = ""
    received_at: float = field(default_factory=time.time)
    direction: Direction = Direction.INBOUND
    listener: str = "inbound"
    auth_user: str = ""
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "peer_ip": self.peer_ip,
            "helo": self.helo,
            "received_at": self.received_at,
            "direction": self.direction.value,
            "listener": self.listener,
            "auth_user": self.auth_user,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Envelope:
        return cls(
            id=str(d["id"]),
            mail_from=str(d.get("mail_from", "")),
            rcpt_tos=[str(r) for r in d.get("rcpt_tos", [])],
            peer_ip=str(d.get("peer_ip", "")),
            helo=str(d.get("helo", "")),
            received_at=float(d.get("received_at", time.time())),
            direction=Direction(d.get("direction", "inbound")),
            listener=str(d.get("listener", "inbound")),
            auth_user=str(d.get("auth_user", "")),
            size=int(d.get("size", 0)),
        )

    def tracking_id(self, rcpt_index: int) -> str:
        """The X-Mailmoat-Id of the copy delivered to rcpt_tos[rcpt_index].

        All copies share the message id as a prefix, so a substring header search (IMAP,
        doveadm) for the message id finds every copy, and the full value finds exactly one.
        """
        return f"{self.id}-{rcpt_index:04d}"
