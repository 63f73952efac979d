"""Translatable strings. A passthrough today; flask-babel's gettext can replace `_` later.

Every user-facing string in Python code and templates goes through `_()` so that extraction
(`pybabel extract`) finds them. Swedish is the source language.
"""

from __future__ import annotations


def _(message: str, **values: object) -> str:
    """Translate `message` (identity for now) and fill `%(name)s` placeholders."""
    return message % values if values else message


def ngettext(singular: str, plural: str, n: int, **values: object) -> str:
    values.setdefault("num", n)
    return (singular if n == 1 else plural) % values


gettext = _
