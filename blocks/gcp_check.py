"""Check, before the first run, that the Google Cloud set-up the flows use works: the blocks, the key,
the bucket and its location, the BigQuery dataset and its location, the permissions, then one small
generated month through the bucket and BigQuery (under a scratch name, removed afterwards).

    make gcp-check                 # or: python blocks/gcp_check.py

Each check is one line, ✔ or ✘ with the fix; the exit status is 0 only if every one passed.
It runs the same calls as write_gcs and write_bq, with the saved blocks (`zoom-gcp-creds`,
`zoom-gcs`), on real GCP or on the local stack. It never prints a key or a password.
"""
from __future__ import annotations

import json
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stack.generator: the month it sends

from nyctaxi.resources import (  # noqa: E402
    BIGQUERY_FIX,
    CREDS_BLOCK,
    DATASET,
    GCS_BLOCK,
    GCS_FIX,
    MAKE_GCP_BLOCKS,
    bigquery_client,
    bucket_key,
    gcs_bucket,
    google_credentials,
    lake_bucket,
    set_up_problem,
)

# What the flows ask of the bucket (write_gcs, extract_from_gcs, the backfill's listing, a lake
# object's replacement): the permissions of the role "Storage Object Admin" on the bucket.
BUCKET_PERMISSIONS = ["storage.objects.create", "storage.objects.get", "storage.objects.list",
                      "storage.objects.delete"]
CHECK_COLOR, CHECK_ROWS = "green", 1_000


@dataclass
class Check:
    ok: bool
    text: str

    def __str__(self) -> str:
        return f"{'✔' if self.ok else '✘'} {self.text}"


def key_check(fields: dict) -> Check:
    """The block's credentials are usable and name a project."""
    try:
        credentials, project = google_credentials(fields)
    except Exception as e:  # noqa: BLE001 - its message may quote the key: only its type is shown
        return Check(False, f"the key in {CREDS_BLOCK!r} is not usable ({type(e).__name__}): save the block again "
                            f"with the key Google gave you ({MAKE_GCP_BLOCKS})")
    if not project:
        return Check(False, f"{CREDS_BLOCK!r} names no project: save it again with a service-account key (it "
                            f"holds project_id) or a project ({MAKE_GCP_BLOCKS})")
    who = getattr(credentials, "service_account_email", None) or "application-default credentials"
    return Check(True, f"key: {who}, project {project}")


def bucket_check(bucket) -> tuple[Check, str | None]:
    """The bucket exists and its location (None: the key may not read it)."""
    from google.api_core.exceptions import Forbidden, NotFound

    from nyctaxi import gcs

    try:
        location = gcs.bucket_location(bucket)
    except NotFound:
        return Check(False, f"bucket {bucket.name!r} does not exist: create it (gcloud storage buckets create "
                            f"gs://{bucket.name} --location=<region>), or save {GCS_BLOCK!r} with the bucket's "
                            f"name ({MAKE_GCP_BLOCKS})"), None
    except Forbidden:
        return Check(False, f"bucket {bucket.name!r}: the key may not use it (403): grant its service account "
                            "Storage Object Admin on the bucket"), None
    if location is None:
        return Check(True, f"bucket {bucket.name!r} exists (its location is not readable with this key: "
                           "storage.buckets.get; a new dataset is made in US, or NYC_TLC_BQ_LOCATION)"), None
    return Check(True, f"bucket {bucket.name!r} exists, in {location}"), location


def permissions_check(bucket) -> Check:
    """The key holds what the flows ask of the bucket (Google's testIamPermissions)."""
    from google.api_core.exceptions import GoogleAPIError

    try:
        granted = set(bucket.test_iam_permissions(BUCKET_PERMISSIONS))
    except (GoogleAPIError, ValueError, KeyError) as e:  # an emulator: no IAM
        return Check(True, f"bucket permissions not asked: the server has no IAM ({type(e).__name__}; an "
                           "emulator): the round trip below uses each of them")
    missing = [p for p in BUCKET_PERMISSIONS if p not in granted]
    if missing:
        return Check(False, f"the key lacks {', '.join(missing)} on bucket {bucket.name!r}: grant its service "
                            "account Storage Object Admin on the bucket")
    return Check(True, f"bucket permissions: {', '.join(BUCKET_PERMISSIONS)}")


def dataset_check(client, bucket_location: str | None) -> tuple[Check, str]:
    """The dataset exists in a location that can read the bucket, or can be made; where it is (or will be)."""
    from google.api_core.exceptions import NotFound

    from nyctaxi import bigquery

    dataset_id = f"{client.project}.{DATASET}"
    wanted = bigquery.dataset_location(bucket_location) or "US"
    try:
        dataset = client.get_dataset(dataset_id, retry=bigquery.RETRY)
    except NotFound:
        return Check(True, f"dataset {dataset_id} does not exist yet: the first load makes it in {wanted}"), wanted
    if bucket_location and not bigquery.can_load(dataset.location, bucket_location):
        return Check(False, f"dataset {dataset_id} is in {dataset.location} and the bucket in {bucket_location}: "
                            "BigQuery loads gs:// objects only into a dataset in the bucket's location (or US): "
                            f"make the dataset again in {bucket_location} (bq rm -r -d "
                            f"{client.project}:{DATASET}; the first load makes it), or use a bucket in "
                            f"{dataset.location}"), dataset.location
    return Check(True, f"dataset {dataset_id} exists, in {dataset.location}"), dataset.location


@contextmanager
def scratch_month(folder: Path) -> Iterator[tuple[Path, int]]:
    """A small generated month as a lake file (the flows' conversion), and its rows."""
    from stack.generator import generate

    from nyctaxi.convert import csv_gz_to_parquet

    raw = generate(CHECK_COLOR, 2019, 1, CHECK_ROWS, folder / "month.csv.gz")
    parquet = folder / "month.parquet"
    report = csv_gz_to_parquet(raw, parquet, CHECK_COLOR)
    yield parquet, report.rows


def round_trip(bucket, gcs_block, client, dataset_location: str) -> list[Check]:
    """Upload the month to the bucket, load it into BigQuery both ways (from the bucket, and from this
    machine), read the rows back; remove everything made, whatever fails."""
    from nyctaxi import bigquery, gcs

    run = f"gcp_check_{uuid.uuid4().hex[:8]}"
    name = bucket_key(gcs_block, f"gcp-check/{run}/{CHECK_COLOR}_tripdata_2019-01.parquet")
    table_id = f"{client.project}.{DATASET}.{run}"
    checks: list[Check] = []
    with ExitStack() as cleanup, tempfile.TemporaryDirectory(prefix="gcp-check-") as folder:
        def step(what: str, fix: str, call: Callable[[], str]) -> bool:
            try:
                checks.append(Check(True, call()))
                return True
            except Exception as e:  # noqa: BLE001 - told in one line, and the next steps skipped
                checks.append(Check(False, f"{what} failed ({_why(e)}): {fix}"))
                return False

        parquet, rows = cleanup.enter_context(scratch_month(Path(folder)))

        def later(remove: Callable[[], object]) -> None:
            """Remove at the end what a step made; what cannot be removed is found below."""
            def quietly() -> None:
                with suppress(Exception):
                    remove()
            cleanup.callback(quietly)

        def upload() -> str:
            later(lambda: bucket.blob(name).delete(retry=gcs.RETRY, timeout=gcs.TIMEOUT))
            gcs.upload(bucket, name, parquet, rows, None)
            held = gcs.object_rows(gcs.get_blob(bucket, name))
            assert held == rows, f"the object holds {held:,} rows of {rows:,}"
            return f"bucket: wrote, read and listed gs://{bucket.name}/{name} ({rows:,} rows)"

        def load() -> str:
            dataset, made = bigquery.ensure_dataset(client, DATASET, lambda: dataset_location)  # as a load would
            if made:
                later(lambda: client.delete_dataset(dataset, not_found_ok=True, retry=bigquery.RETRY))
            from_bucket = bigquery.create_staging(client, table_id, CHECK_COLOR)
            later(lambda: bigquery.drop(client, from_bucket))
            bigquery.stage_with_load_job(client, f"gs://{bucket.name}/{name}", from_bucket, CHECK_COLOR)
            from_here = bigquery.create_staging(client, table_id, CHECK_COLOR)
            later(lambda: bigquery.drop(client, from_here))
            bigquery.stage_with_load_file(client, parquet, from_here, CHECK_COLOR)
            counts = [bigquery.count(client, t) for t in (from_bucket, from_here)]
            assert counts == [rows, rows], f"the tables hold {counts} rows, not {rows:,} each"
            return (f"BigQuery: loaded the object and the local file into scratch tables of {DATASET}, "
                    f"{rows:,} rows each, read back")

        storage_fix = f"grant the key's service account Storage Object Admin on bucket {bucket.name!r}"
        bq_fix = ("grant the key's service account BigQuery Data Editor on the dataset (or the project) and "
                  "BigQuery Job User on the project")
        if step("writing to the bucket", storage_fix, upload):
            step("loading into BigQuery", bq_fix, load)
    try:  # what the clean-up could not remove is said, never left unsaid
        leftover = [b.name for b in bucket.list_blobs(prefix=bucket_key(gcs_block, f"gcp-check/{run}/"))]
        leftover += [t.table_id for t in client.list_tables(f"{client.project}.{DATASET}") if run in t.table_id]
    except Exception:  # noqa: BLE001 - no dataset, or a service out of reach: the checks above said so
        leftover = []
    if leftover:
        checks.append(Check(False, f"left behind, to remove by hand: {', '.join(leftover)}"))
    return checks


def _why(error: Exception) -> str:
    """An error in one line: Google's own message for an API error (its body's, not the whole body)."""
    errors, text = getattr(error, "errors", None), str(error)
    message = errors[0].get("message") if errors and isinstance(errors[0], dict) else None
    if not message and (start := text.find('{"error"')) >= 0:  # the storage client quotes the body whole
        with suppress(ValueError, KeyError, TypeError):
            message = json.JSONDecoder().raw_decode(text[start:])[0]["error"]["message"]
    if message:
        return f"{getattr(error, 'code', '')} {type(error).__name__}: {message[:300]}".strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300] if text else ''}"


def checks() -> Iterator[Check]:
    """Every check, in order; after a failed one, those that need it are skipped."""
    if problem := set_up_problem([CREDS_BLOCK, GCS_BLOCK]):
        yield Check(False, problem)
        return
    yield Check(True, f"blocks {CREDS_BLOCK!r} and {GCS_BLOCK!r} are saved")
    gcs_block = gcs_bucket()
    key = key_check(gcs_block.credentials)
    yield key
    if not key.ok:
        return
    from nyctaxi import bigquery, gcs

    bucket = lake_bucket(gcs_block)
    with gcs.reaching(GCS_FIX):
        found, bucket_location = bucket_check(bucket)
    yield found
    if not found.ok:
        return
    with gcs.reaching(GCS_FIX):
        yield permissions_check(bucket)
    client = bigquery_client()
    with bigquery.reaching(BIGQUERY_FIX):
        dataset, location = dataset_check(client, bucket_location)
    yield dataset
    if dataset.ok:
        yield from round_trip(bucket, gcs_block, client, location)


def main() -> int:
    failed = 0
    try:
        for check in checks():
            print(check, flush=True)
            failed += not check.ok
    except Exception as e:  # noqa: BLE001 - a service out of reach, say: one line, as the flows tell it
        print(Check(False, _why(e)), flush=True)
        failed += 1
    print("all checks passed: the flows can run here" if not failed else
          f"{failed} check{'s' if failed > 1 else ''} failed: see the fix on each ✘ line")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
