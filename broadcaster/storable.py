"""Text every store can hold: what crosses from outside into a stored text column.

Contract: `storable_text(s)` returns `s` unchanged unless it holds a character PostgreSQL's
text cannot store; then each NUL (U+0000) and each lone surrogate (U+D800..U+DFFF, which
`json.loads` accepts from a provider's or X's JSON) becomes U+FFFD. SQLite would take them, but
both stores must hold the same text, and one such character must never turn into an error
that is retried for ever (a reply source stuck behind one post, a batch of delivery
outcomes never recorded, so sent again and again).
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
# A surrogate in a Python str is always a lone one (a pair is one code point).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """`value` with NUL and lone surrogates as U+FFFD (see the module docstring)."""
    if value.isascii():
        return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
    return _UNSTORABLE.sub(REPLACEMENT, value)
