"""Whether the ham given to `mailmoat train` is far older than its spam: then the model learns the era.

The classifier never reads dates, but words do carry their time: trained on mailing-list ham of
2002 and phishing of 2024, a model learns every word that only newer mail uses (meetings online,
two-factor codes, app names) from phishing alone, and holds a colleague's Teams invitation. The
training run reads each message's Date header only to say so, and nothing of it reaches the model.
"""

from __future__ import annotations

import statistics
import time

from mailmoat.parse.headers import parse_date

# Each side needs this many dated messages before their years say anything.
MIN_DATED = 20
# Medians this many years apart (or more) make the warning.
GAP_YEARS = 3


def year_of(date_header: str) -> int | None:
    """The year of a Date header, or None when it is missing, unreadable or in the future."""
    ts = parse_date(date_header) if date_header else None
    if ts is None or ts > time.time() + 86400 or ts < 0:
        return None
    return time.gmtime(ts).tm_year


def era_warning(ham_years: list[int], other_years: list[int], other: str = "spam") -> str | None:
    """A warning when the ham learnt is from years well before the `other` kind ("spam" or
    "phishing", each compared on its own: old spam beside new phishing would hide the gap), else None."""
    if len(ham_years) < MIN_DATED or len(other_years) < MIN_DATED:
        return None
    ham, newer = statistics.median_low(ham_years), statistics.median_low(other_years)
    if newer - ham < GAP_YEARS:
        return None
    return (
        f"warning: the ham learnt is from around {ham} and the {other} from around {newer}: "
        f"words that only mail after {ham} uses are learnt from {other} alone, and legitimate mail of "
        f"today will read as {other}; add recent ham (--ham DIR, or --from-store --delivered-as-ham AGE)"
    )
