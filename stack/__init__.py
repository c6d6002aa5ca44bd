"""The embedded local stack: a Prefect server, GCS and BigQuery emulators, PostgreSQL and a mirror
of the release files (``make stack`` runs ``python stack/ctl.py up``)."""
