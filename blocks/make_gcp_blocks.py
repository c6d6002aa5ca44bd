"""Save the GCP blocks the flows load: ``zoom-gcp-creds`` (GcpCredentials) and ``zoom-gcs`` (GcsBucket).

Real GCP:    python blocks/make_gcp_blocks.py --key ~/keys/sa.json --bucket dtc_data_lake_myproject
             (or set GCP_SERVICE_ACCOUNT_FILE and GCS_BUCKET)
Local stack: python blocks/make_gcp_blocks.py --local   (after: source .stack/env)

Saving again overwrites. The key's contents are stored in the block (a secret
field) and never printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from prefect_gcp import GcpCredentials
from prefect_gcp.cloud_storage import GcsBucket

from nyctaxi.resources import CREDS_BLOCK, setting
from nyctaxi.resources import GCS_BLOCK as BUCKET_BLOCK

KEY_FIELDS = ("private_key", "client_email", "token_uri")


def local_credentials() -> GcpCredentials:
    """Credentials for the local stack: application-default credentials from its env file."""
    missing = [v for v in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT")
               if not os.environ.get(v)]
    if missing:
        sys.exit(f"--local needs the local stack's environment ({', '.join(missing)} unset): "
                 "run `make stack` and `source .stack/env` first")
    return GcpCredentials(project=os.environ["GOOGLE_CLOUD_PROJECT"])


def service_account_credentials(key_file: Path) -> GcpCredentials:
    """Credentials from a service-account JSON key (its contents go into the block)."""
    try:
        info = json.loads(key_file.expanduser().read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"cannot read the service-account key {key_file}: {type(e).__name__}")
    if not isinstance(info, dict) or info.get("type") != "service_account":
        sys.exit(f"{key_file} is not a service-account key (create one under IAM > Service accounts > Keys)")
    missing = [f for f in KEY_FIELDS if not info.get(f)]
    if missing:
        sys.exit(f"{key_file} lacks the fields {missing} of a service-account key: download the key again")
    try:
        credentials = GcpCredentials(service_account_info=info, project=info.get("project_id"))
    except Exception as e:  # noqa: BLE001 - its message may quote the key, so only its type is shown
        sys.exit(f"{key_file} is not a usable service-account key (google-auth refused it: {type(e).__name__})")
    print(f"service account: {info['client_email']} (project {info.get('project_id')})")
    return credentials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local", action="store_true", help="use the local stack (emulators)")
    parser.add_argument("--key", type=Path, default=setting("GCP_SERVICE_ACCOUNT_FILE"),
                        help="service-account JSON key file (env GCP_SERVICE_ACCOUNT_FILE)")
    parser.add_argument("--bucket", default=setting("GCS_BUCKET"), help="GCS bucket name (env GCS_BUCKET)")
    args = parser.parse_args()
    if not args.bucket:
        parser.error("no bucket: pass --bucket or set GCS_BUCKET")
    if args.local:
        credentials = local_credentials()
    elif args.key:
        credentials = service_account_credentials(Path(args.key))
    else:
        parser.error("pass --key (or set GCP_SERVICE_ACCOUNT_FILE) for real GCP, or --local for the local stack")

    credentials.save(CREDS_BLOCK, overwrite=True)
    GcsBucket(bucket=args.bucket, gcp_credentials=credentials).save(BUCKET_BLOCK, overwrite=True)
    print(f"saved blocks {CREDS_BLOCK!r} and {BUCKET_BLOCK!r} "
          f"(bucket {args.bucket!r}, project {credentials.project!r})")


if __name__ == "__main__":
    main()
