"""Values from the data or from an error, made safe to put into the markdown the UI renders.

A trip file is input from the web: a text cell can hold ``|`` and a newline (which split a table
row and start a heading), ``[x](javascript:...)`` (a live link), or HTML (which the UI drops, so
the artifact says ``holds ''``). ``text`` makes any value one line of literal text, cut to a
length a table cell or a heading can show.
"""
from __future__ import annotations

import re

LIMIT = 120  # characters of a value shown; the logs and docs/failures.md have the rest
# What markdown (CommonMark and GitHub's tables) reads as syntax inside a line: ``[`` starts links
# and images, ``|`` ends a cell, ``*`` and a ``_`` at a word's edge emphasis (``yellow_tripdata``
# stays as it is), ``#`` closes a heading; ``&`` too, or ``&lt;`` in the data would show as ``<``.
_SYNTAX = re.compile(r"([\\`*\[\]<>|~#&]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def text(value: object, limit: int = LIMIT) -> str:
    """``value`` as markdown that renders as exactly its text (on one line, cut to ``limit``
    characters with ``…``): line breaks become spaces, control characters their ``\\xNN`` escape,
    markdown syntax is backslash-escaped and HTML's ``< > &`` become entities."""
    raw = " ".join(str(value).splitlines())
    raw = _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", raw)
    if len(raw) > limit:
        raw = raw[:limit - 1] + "…"
    return _SYNTAX.sub(lambda m: _ENTITIES.get(m[0], "\\" + m[0]), raw)
