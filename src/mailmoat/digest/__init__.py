"""Quarantine digests: each local recipient is told, at set hours, what was held for them, with links to release it.

`listing` chooses what is listed to whom and when, `text` makes mail's words safe to show,
`compose` writes the digest, `send` claims, delivers and schedules it, `links` serves the release
links, `requests` keeps the requests that the administrators release what users may not,
`safe_senders` the senders a recipient chose to always receive (spam only).
"""

from mailmoat.digest.compose import compose, render
from mailmoat.digest.links import Link, look_up, redeem, token_hash
from mailmoat.digest.listing import Digest, Item, current_slot, due, held_for, offered, preview
from mailmoat.digest.send import run_digests, send_due
from mailmoat.digest.text import shown

__all__ = [
    "Digest", "Item", "Link", "compose", "current_slot", "due", "held_for", "look_up", "offered", "preview", "redeem",
    "render", "run_digests", "send_due", "shown", "token_hash",
]
