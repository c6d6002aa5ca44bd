"""Start bqemulator (the BigQuery emulator) with the two adjustments this stack needs.

- The Google client sends uploads under 5 MiB with ``Content-Type: */*``, which the
  emulator rejects: accept it.
- The emulator copies the whole table into a time-travel snapshot before every load
  and DML statement (2x the time, 4x the disk): the local stack needs no time travel.
- It keeps BigQuery's transaction concurrency, table update rate and the locations a ``gs://``
  load may read (``stack/bq_rules.py``), which the emulator does not.

Usage: the same arguments as ``bqemulator`` (see services.py).
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")

import bqemulator.api.routes.upload as upload  # noqa: E402
from bqemulator.versioning.snapshots import SnapshotManager  # noqa: E402

if "*/*" not in upload._PERMITTED_MEDIA_CONTENT_TYPES:
    upload._PERMITTED_MEDIA_CONTENT_TYPES = (*upload._PERMITTED_MEDIA_CONTENT_TYPES, "*/*")

_capture = SnapshotManager.capture


def _capture_explicit_only(self, *args, kind="AUTO", **kwargs):
    return None if kind == "AUTO" else _capture(self, *args, kind=kind, **kwargs)


SnapshotManager.capture = _capture_explicit_only

from stack import bq_rules  # noqa: E402

bq_rules.install()

from bqemulator.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
