"""One seam to the outside world: every environment variable the code reads is declared in
nyctaxi.resources and listed in docs/configuration.md; every block name is spelled there only."""
from __future__ import annotations

import re
from pathlib import Path

from nyctaxi import resources

REPO = Path(__file__).resolve().parents[2]
CODE = [p for folder in ("flows", "blocks", "deployments", "stack", "bench") for p in (REPO / folder).rglob("*.py")]
# os.environ.get("X"), os.environ["X"], setting("X"), seconds("X"), and the constants resources names them by.
READS = re.compile(r'(?:os\.environ(?:\.get)?[\[(]|getenv\(|setting\(|seconds\()\s*"([A-Z][A-Z0-9_]*)"')
CONSTANT_READS = re.compile(r"setting\(([A-Z_]+_ENV)\)")


def variables_read() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in CODE:
        text = path.read_text()
        names = set(READS.findall(text)) | {getattr(resources, c) for c in CONSTANT_READS.findall(text)}
        for name in names:
            found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_variable_the_code_reads_is_declared_with_its_default():
    read = variables_read()
    assert {"NYC_TLC_BASE_URL", "NYC_TLC_DATA_DIR", "STACK_DIR", "POSTGRES_HOST"} <= set(read)  # the scan works
    undeclared = {name: sorted(where) for name, where in read.items() if name not in resources.ENVIRONMENT}
    assert undeclared == {}


def test_the_configuration_page_lists_exactly_the_declared_variables():
    page = (REPO / "docs" / "configuration.md").read_text()
    listed = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", page, flags=re.M)
    assert sorted(listed) == sorted(resources.ENVIRONMENT)
    for name, variable in resources.ENVIRONMENT.items():
        default = f"`{variable.default}`" if variable.default else "(unset)"
        assert f"| `{name}` | {default} |" in page


def test_each_block_name_is_spelled_once_outside_the_tests():
    for block in (resources.GCS_BLOCK, resources.CREDS_BLOCK, resources.POSTGRES_BLOCK, resources.DOCKER_BLOCK,
                  resources.NOTIFICATION_BLOCK):
        spelled = [str(p.relative_to(REPO)) for p in CODE if f'"{block}"' in p.read_text()]
        assert spelled == ["flows/nyctaxi/resources.py"], block


def test_a_setting_is_its_variable_else_its_default(monkeypatch):
    monkeypatch.delenv("POSTGRES_PORT", raising=False)
    assert resources.setting("POSTGRES_PORT") == "5432"
    monkeypatch.setenv("POSTGRES_PORT", "6543")
    assert resources.setting("POSTGRES_PORT") == "6543"
    monkeypatch.setenv("POSTGRES_PORT", "")  # empty counts as unset, as a shell's `export X=` means
    assert resources.setting("POSTGRES_PORT") == "5432"
