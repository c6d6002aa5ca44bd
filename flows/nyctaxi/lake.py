"""Where files live: the local data root (raw downloads, staging, the parquet lake)."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.parquet as pq

from . import resources, schema, scratch
from .resources import DATA_DIR_ENV, LAKE_PREFIX, setting

# What stands beside flows/ in a checkout and in the image (/opt/prefect).
REPO_MARKER = "docker-requirements.txt"
# Where data goes when the code runs from a copy that is neither installed nor in a checkout.
FALLBACK_DATA_ROOT = Path.home() / "nyc-tlc-data"


class NotInLakeError(FileNotFoundError):
    """A month asked of the lake's bucket that is not there: no retry brings it, etl_web_to_gcs does."""


def data_root() -> Path:
    """``$NYC_TLC_DATA_DIR``, or the checkout's ``data/`` (``resources.REPO``): never the current directory."""
    configured = setting(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    if (resources.REPO / REPO_MARKER).is_file():
        return resources.REPO / "data"
    return FALLBACK_DATA_ROOT


def lake_path(color: str, dataset_file: str, root: Path | None = None) -> Path:
    """``<root>/{color}/{color}_tripdata_{year}-{MM}.parquet``."""
    return (root or data_root()) / color / f"{dataset_file}.parquet"


def object_prefix(color: str) -> str:
    """Where a colour's objects are in the bucket: ``data/yellow/``."""
    return f"{LAKE_PREFIX}/{color}/"


def object_key(color: str, dataset_file: str) -> str:
    """The bucket key, ``/``-separated on every OS: ``data/yellow/yellow_tripdata_2021-01.parquet``."""
    return f"{object_prefix(color)}{dataset_file}.parquet"


def raw_path(url: str, root: Path | None = None) -> Path:
    """Where the download of ``url`` is kept: ``<root>/raw/<file>.<url hash>.csv.gz``.

    The hash keeps files of the same name from different servers apart, so a
    cached download always holds the bytes of the URL it was cached for.
    """
    name = Path(urlparse(url).path).name
    stem = name.removesuffix(".csv.gz")
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    return (root or data_root()) / "raw" / f"{stem}.{digest}.csv.gz"


def staging_dir(root: Path | None = None) -> Path:
    """Where files wait between download or conversion and publishing (on the lake's filesystem,
    so that publishing is an atomic rename): one scratch folder per process (``scratch``)."""
    return (root or data_root()) / ".staging"


def scratch_dir(root: Path | None = None) -> Path:
    """This process's folder under ``staging_dir``; what killed runs left there is removed first."""
    return scratch.scratch_dir(staging_dir(root))


def run_staging_dir(run: str, root: Path | None = None) -> Path:
    """The folder of the files flow run ``run`` stages in this process (removed when the run ends)."""
    return scratch_dir(root) / run


def staging_path(name: str, root: Path | None = None, run: str | None = None) -> Path:
    """A fresh temporary file name in this process's scratch folder (in the folder of flow run ``run``)."""
    folder = run_staging_dir(run, root) if run else scratch_dir(root)
    folder.mkdir(exist_ok=True)
    return folder / f"{name}.{uuid.uuid4().hex[:8]}.parquet"


def is_staged(path: Path, root: Path | None = None) -> bool:
    """Whether ``path`` is a staging file (temporary: its reader may delete it)."""
    return staging_dir(root) in path.parents


def publish(staged: Path, dest: Path) -> Path:
    """Move a complete file into place atomically (readers see the old file or the new one).

    If it cannot be moved, the staged file is removed: nothing is left half-done.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, dest)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return dest


def row_count(path: Path) -> int:
    """Rows in a parquet file, from its footer."""
    return pq.ParquetFile(path).metadata.num_rows


def source_version(path: Path) -> str | None:
    """The version of the release file a lake file was made from (``None`` if not recorded)."""
    return schema.source_version(pq.read_schema(path))
