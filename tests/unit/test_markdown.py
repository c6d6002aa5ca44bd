"""nyctaxi.markdown: any value becomes one line of literal markdown text."""
from __future__ import annotations

import pytest

from nyctaxi.markdown import LIMIT, text


@pytest.mark.parametrize(("value", "expected"), [
    ("N", "N"),
    ("yellow_tripdata_2021-01.csv.gz", "yellow_tripdata_2021-01.csv.gz"),  # intraword _ is no emphasis
    ("a|b\n### injected", "a\\|b \\#\\#\\# injected"),
    ("[x](javascript:alert(1))", "\\[x\\](javascript:alert(1))"),
    ("<b>bold</b> & &lt;", "&lt;b&gt;bold&lt;/b&gt; &amp; &amp;lt;"),
    ("_x_ *y* `z` ~~w~~", "\\_x\\_ \\*y\\* \\`z\\` \\~\\~w\\~\\~"),
    ("a\x00b\r\nc\\d", "a\\\\x00b c\\\\d"),
    (1234, "1234"),
])
def test_a_value_becomes_literal_text(value, expected):
    assert text(value) == expected


def test_a_long_value_is_cut_to_the_limit_before_escaping():
    assert text("x" * 1000) == "x" * (LIMIT - 1) + "…"
    assert text("|" * 10, limit=4) == "\\|\\|\\|…"
