"""Deployment ``etl-parent-flow/process-flow``: the parent flow as a local process, no container engine needed.

    python deployments/process_deploy.py       (from any folder)
    prefect agent start -q default             (on this machine: it runs the flows from this checkout)
    prefect deployment run etl-parent-flow/process-flow -p "months=[1,2]"
"""
from __future__ import annotations

from common import apply_process_deployment, script_parser

if __name__ == "__main__":
    apply_process_deployment("process-flow", script_parser(__doc__))
