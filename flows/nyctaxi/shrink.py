"""The rule every destination applies before it replaces a month: never with less, unless asked.

A release file can be republished broken (a header and no rows, a cut-down extract).
Loading it would silently replace a good month. So before a destination (the local
lake file, the bucket object, the PostgreSQL partition, the BigQuery month) is
replaced, the new edition's rows are compared with what that destination holds for
the same release file: no rows is refused, and so is fewer than ``MIN_FRACTION`` of
the loaded rows. A corrected edition a few rows shorter or longer loads as usual.
``allow_shrink=True`` (``--allow-shrink``) loads it anyway.
"""
from __future__ import annotations

# A new edition with fewer than half the rows of the loaded one is refused. Real corrections of
# the TLC files move a month by far less; a broken or partial export loses far more.
MIN_FRACTION = 0.5
HOW_TO_FORCE = "if this edition is right, run again with allow_shrink=True (--allow-shrink on the command line)"


class ShrinkError(ValueError):
    """A new edition of a month would replace what a destination holds with no rows, or far fewer."""


def check_replacement(destination: str, source_file: str, new_rows: int, loaded_rows: int | None,
                      *, allow_shrink: bool = False) -> None:
    """Raise ShrinkError unless ``new_rows`` of ``source_file`` may replace the ``loaded_rows``
    that ``destination`` holds of it (``None``: nothing loaded yet)."""
    if allow_shrink:
        return
    held = (f"{destination} holds {loaded_rows:,} rows of it" if loaded_rows
            else f"nothing of it is in {destination} yet")
    if new_rows == 0:
        raise ShrinkError(f"refused to load {source_file} into {destination}: the new edition has no rows "
                          f"({held}); {HOW_TO_FORCE}")
    if loaded_rows and new_rows < loaded_rows * MIN_FRACTION:
        raise ShrinkError(f"refused to replace {source_file} in {destination}: the new edition has {new_rows:,} rows, "
                          f"less than {MIN_FRACTION:.0%} of the {loaded_rows:,} loaded; {HOW_TO_FORCE}")
