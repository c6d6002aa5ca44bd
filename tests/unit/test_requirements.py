from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pins(name: str) -> dict[str, str]:
    out = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            package, _, version = line.partition("==")
            assert version, f"{name}: {line} is not pinned"
            out[package.split("[")[0].lower()] = version
    return out


def test_the_image_and_the_laptop_pin_the_same_stack():
    assert pins("docker-requirements.txt") == pins("requirements.txt")


def test_the_prefect_2_stack_is_coherent():
    runtime = pins("requirements.txt")
    assert runtime["prefect"] == "2.20.26"
    assert runtime["prefect-gcp"] == "0.5.17" and runtime["prefect-sqlalchemy"] == "0.4.4"
    assert int(runtime["pandas"].split(".")[0]) < 3
    assert "psycopg2-binary" in runtime


def test_the_image_copies_the_flows_where_deployments_expect_them():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM prefecthq/prefect:2.20.26-python3.11" in dockerfile
    assert "COPY flows /opt/prefect/flows" in dockerfile
