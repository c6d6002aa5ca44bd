"""`make gcp-check` (blocks/gcp_check.py): every check passes on the local stack; a wrong bucket name
and a dataset in another location each fail with the right line, and the check leaves nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from faults import DyingApi
from helpers import BIN, REPO, bq_client, bucket, private_bigquery, save_blocks

sys.path.insert(0, str(REPO / "blocks"))
import gcp_check  # noqa: E402


def scratch_left() -> list[str]:
    """What a check made and did not remove: objects under gcp-check/, tables named gcp_check_*."""
    client = bq_client()
    left = [b.name for b in bucket().list_blobs(prefix="gcp-check/")]
    return left + [t.table_id for t in client.list_tables(f"{client.project}.dezoomcamp") if "gcp_check" in t.table_id]


def test_every_check_passes_on_the_local_stack_and_nothing_is_left():
    done = subprocess.run([str(BIN / "python"), str(REPO / "blocks" / "gcp_check.py")], capture_output=True,
                          text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert all(line.startswith("✔ ") for line in lines[:-1]), done.stdout
    assert lines[-1] == "all checks passed: the flows can run here"
    assert any(line.startswith("✔ bucket 'dezoomcamp-local-lake' exists, in US") for line in lines)
    assert any("loaded the object and the local file into scratch tables" for line in lines)
    assert scratch_left() == []
    password = (REPO / ".stack" / "postgres-password")
    assert not password.exists() or password.read_text().strip() not in done.stdout


@pytest.mark.plain  # the check's own logic: the blocks it reads are covered above on both runtimes
def test_a_bucket_that_does_not_exist_is_named_with_the_fix(capsys):
    save_blocks("make_gcp_blocks.py", "--local", "--bucket", "no-such-bucket-here")
    try:
        assert gcp_check.main() == 1
    finally:
        save_blocks("make_gcp_blocks.py", "--local")
    out = capsys.readouterr().out
    assert "✘ bucket 'no-such-bucket-here' does not exist: create it (gcloud storage buckets create " \
           "gs://no-such-bucket-here --location=<region>), or save 'zoom-gcs' with the bucket's name" in out
    assert out.strip().splitlines()[-1] == "1 check failed: see the fix on each ✘ line"


@pytest.mark.plain
def test_a_dataset_in_another_location_than_the_bucket_is_refused_and_nothing_is_made(tmp_path, monkeypatch, capsys):
    from google.cloud import bigquery

    with private_bigquery(tmp_path / "bq-stack") as (client, host):
        client.delete_dataset(f"{client.project}.dezoomcamp", delete_contents=True)  # made in US by the stack
        dataset = bigquery.Dataset(f"{client.project}.dezoomcamp")
        dataset.location = "EU"
        client.create_dataset(dataset)
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", host)
        assert gcp_check.main() == 1
        out = capsys.readouterr().out
        assert (f"✘ dataset {client.project}.dezoomcamp is in EU and the bucket in US: BigQuery loads gs:// objects "
                "only into a dataset in the bucket's location (or US)") in out
        assert not any("BigQuery: loaded" in line for line in out.splitlines())  # the round trip did not run
        assert [t.table_id for t in client.list_tables(f"{client.project}.dezoomcamp")] == []
    assert [b.name for b in bucket().list_blobs(prefix="gcp-check/")] == []


@pytest.mark.plain
def test_a_denied_permission_is_named_with_the_role_and_nothing_is_left(monkeypatch, capsys):
    """The emulator has no IAM: a stand-in in front of it answers as Google does for a key whose role
    lacks storage.objects.create: testIamPermissions leaves it out, and an upload gets the 403."""
    name = os.environ["GCS_BUCKET"]
    message = ("gcp-check@dezoomcamp-local.iam.gserviceaccount.com does not have storage.objects.create access "
               "to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it "
               "may not exist).")
    denied = {"error": {"code": 403, "message": message,
                        "errors": [{"message": message, "domain": "global", "reason": "forbidden"}]}}

    def answer(method: str, path: str):
        if path.startswith(f"/storage/v1/b/{name}/iam/testPermissions"):
            return 200, {"kind": "storage#testIamPermissionsResponse",
                         "permissions": ["storage.objects.get", "storage.objects.list", "storage.objects.delete"]}
        if method == "POST" and path.startswith(f"/upload/storage/v1/b/{name}/o"):
            return 403, denied
        return None

    gcs = DyingApi(os.environ["STORAGE_EMULATOR_HOST"], answer=answer)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    assert gcp_check.main() == 1
    out = capsys.readouterr().out
    assert (f"✘ the key lacks storage.objects.create on bucket {name!r}: grant its service account Storage Object "
            "Admin on the bucket") in out
    assert (f"✘ writing to the bucket failed (403 Forbidden: {message}): grant the key's service account Storage "
            f"Object Admin on bucket {name!r}") in out
    assert out.strip().splitlines()[-1] == "2 checks failed: see the fix on each ✘ line"
    assert scratch_left() == []
