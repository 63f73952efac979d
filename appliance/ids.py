"""Numeric ids that come from a request (a path, a form field, a query string).

SQLite stores INTEGER ids in 64 bits; binding a larger Python int raises OverflowError (a 500). Every id
from outside goes through `parse_id`, so an out-of-range id is simply an id no row has: a 404 like any
unknown id, audited like one. The web's `<int:...>` route converter uses the same bound.
"""

from __future__ import annotations

MAX_ID = 2**63 - 1  # SQLite's largest INTEGER
NO_ID = -1  # what an out-of-range id becomes: no row (rowids, line and speaker numbers are never negative)


def parse_id(value: object) -> int | None:
    """`value` as a non-negative id within SQLite's range, or None (not a number, negative or too large)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip() if value is not None else ""
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            return None
        n = int(text)
    return n if 0 <= n <= MAX_ID else None
