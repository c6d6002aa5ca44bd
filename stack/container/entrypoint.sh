#!/usr/bin/env bash
# As the real image's entrypoint: run the given command (or a shell).
set -e
if [ -z "$*" ]; then prefect version; exec bash --login; else exec "$@"; fi
