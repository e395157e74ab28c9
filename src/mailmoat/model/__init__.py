"""Pure data types shared by every part of mailmoat (no I/O)."""

from mailmoat.model.envelope import Direction, Envelope
from mailmoat.model.finding import Finding, Symbol
from mailmoat.model.message import (
    Address,
    Document,
    Image,
    Message,
    Part,
    QrCode,
    ReceivedHop,
    Url,
)
from mailmoat.model.verdict import Action, Verdict

__all__ = [
    "Action",
    "Address",
    "Direction",
    "Document",
    "Envelope",
    "Finding",
    "Image",
    "Message",
    "Part",
    "QrCode",
    "ReceivedHop",
    "Symbol",
    "Url",
    "Verdict",
]
