"""What starts a recall job: the trigger names recorded on every job, and which are a person's word."""

from __future__ import annotations

MANUAL = "manual"  # an administrator ran it (`recall run`, the console, the API)
VERDICT = "auto:verdict"  # a person marked a message a threat
INDICATOR = "auto:indicator"  # a threat indicator was listed that delivered mail carries
RESCAN = "auto:rescan"  # a later scan condemned delivered mail
WAVE = "auto:wave"  # a wave of one new link destination condemned its earlier mail
SIBLINGS = "auto:siblings"  # the campaign follow-up of a person's recall
INCIDENT = "incident"  # a compromised account was contained

# A person's verdict, or threat intelligence a person listed: what teaches the near-copy memory and
# the condemned link destinations, and what the campaign follow-up follows. The gateway's own later
# verdicts are left out, so that no mistake of the engine's spreads to other mail.
PERSON = (MANUAL, VERDICT, INDICATOR)
