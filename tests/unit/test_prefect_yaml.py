"""prefect.yaml: the deployments for work pools and workers."""
from pathlib import Path

import yaml

from nyctaxi import ARROW_ALLOCATOR_ENV

REPO = Path(__file__).resolve().parents[2]


def test_prefect_yaml_gives_every_flow_process_the_allocator_settings():
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        assert deployment["work_pool"]["job_variables"]["env"] == ARROW_ALLOCATOR_ENV, deployment["name"]


def test_every_entrypoint_of_prefect_yaml_exists():
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        path, _, function = deployment["entrypoint"].partition(":")
        assert f"def {function}(" in (REPO / path).read_text(), deployment["entrypoint"]
