"""prefect.yaml: the deployments for work pools and workers."""
from pathlib import Path

import pytest
import yaml

from nyctaxi import ARROW_ALLOCATOR_ENV
from nyctaxi.resources import DOCKER_POOL, PROCESS_POOL, container_settings

REPO = Path(__file__).resolve().parents[2]


def test_every_flow_process_gets_the_allocator_settings():
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        if deployment["work_pool"]["name"] == PROCESS_POOL:
            assert deployment["work_pool"]["job_variables"]["env"] == ARROW_ALLOCATOR_ENV, deployment["name"]
        else:  # the docker pool's default environment (blocks/make_docker_pool.py), as the zoom block's
            assert deployment["work_pool"] == {"name": DOCKER_POOL, "job_variables": {}}
    env, volumes = container_settings(local=False)
    assert env == {"PREFECT_HOME": "/opt/prefect/.prefect", **ARROW_ALLOCATOR_ENV} and volumes == []


def test_a_container_on_the_local_stack_gets_its_addresses_and_its_credentials_read_only(monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9023")
    monkeypatch.setenv("NYC_TLC_BASE_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/stack/adc.json")
    monkeypatch.delenv("BIGQUERY_EMULATOR_HOST", raising=False)
    env, volumes = container_settings(local=True)
    assert env["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:9023" and "BIGQUERY_EMULATOR_HOST" not in env
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/opt/prefect/.config/adc.json"
    assert volumes == ["/stack/adc.json:/opt/prefect/.config/adc.json:ro"]
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    with pytest.raises(SystemExit, match="source .stack/env"):
        container_settings(local=True)


def test_every_entrypoint_of_prefect_yaml_exists():
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        path, _, function = deployment["entrypoint"].partition(":")
        assert f"def {function}(" in (REPO / path).read_text(), deployment["entrypoint"]
