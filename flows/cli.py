"""The command-line flags the flow scripts share: --year, --month (or --months), --color."""
from __future__ import annotations

import argparse


def parser(description: str | None, *, months: list[int] | None = None) -> argparse.ArgumentParser:
    """``--month`` (default 1), or ``--months`` (default ``months``) when given; ``--year``, ``--color``."""
    p = argparse.ArgumentParser(description=description)
    if months is None:
        p.add_argument("--month", type=int, default=1)
    else:
        p.add_argument("--months", type=int, nargs="+", default=months)
    p.add_argument("--year", type=int, default=2021)
    p.add_argument("--color", default="yellow", help="yellow, green or fhv")
    p.add_argument("--allow-shrink", action="store_true",
                   help="replace a loaded month even with an edition that has no rows or far fewer")
    return p
