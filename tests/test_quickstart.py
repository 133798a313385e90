"""The README's quickstart, pasted as a user would: its shell block, taken from README.md,
run by bash, and its Python script, run by Python with the client installed, against a
live ``itinera serve`` with the demo org seeded."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from itinera.settings import Settings
from tests.support.processes import (
    ServerProcess,
    child_environment,
    real_server_environment,
    run_cli,
    serving,
)

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- quickstart:"
PYTHON_MARKER = "<!-- quickstart-python:"
STEP = "@@quickstart step {}@@"


def quickstart_steps() -> list[str]:
    """The ```sh block after the quickstart marker, one step per paragraph."""
    text = README.read_text()
    assert text.count(MARKER) == 1
    after = text[text.index(MARKER) :]
    block = re.search(r"^```sh\n(.*?)^```$", after, re.DOTALL | re.MULTILINE)
    assert block is not None, "the marker is followed by a ```sh block"
    return [step.strip() for step in re.split(r"\n\s*\n", block.group(1)) if step.strip()]


@pytest.fixture(scope="module")
def service(settings: Settings) -> Iterator[ServerProcess]:
    env = real_server_environment(settings)
    seeded = run_cli("seed", env=env)
    assert seeded.returncode == 0, seeded.stderr
    with serving(env) as (server,):
        yield server


def run_steps(steps: list[str], base_url: str, cwd: Path) -> list[str]:
    """Run the steps in one bash, as pasted; the output of each."""
    script = "".join(f"printf '%s\\n' '{STEP.format(i)}'\n{s}\n" for i, s in enumerate(steps))
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=child_environment({"ITINERA_URL": base_url}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    outputs = re.split(r"^@@quickstart step \d+@@\n", result.stdout, flags=re.MULTILINE)
    assert outputs[0] == ""
    return outputs[1:]


def json_line(output: str) -> Any:
    assert output.endswith("\n"), output
    assert output.count("\n") == 1, output
    return msgspec.json.decode(output)


def test_the_readme_quickstart_logs_in_creates_an_itinerary_and_reads_it_back(
    service: ServerProcess, tmp_path: Path
) -> None:
    assert shutil.which("curl"), "the quickstart needs curl"
    introduction = README.read_text().split(MARKER)[0].rsplit("## Quickstart", 1)[1]
    assert "make run" in introduction

    setup, login, create, read_back = run_steps(quickstart_steps(), service.base_url, tmp_path)

    assert setup == ""
    tokens = json_line(login)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    created = json_line(create)
    assert created["title"] == "Red Sea week"
    assert (created["start_date"], created["end_date"]) == ("2027-05-01", "2027-05-07")
    assert created["status"] == "draft"
    assert json_line(read_back) == created


def quickstart_script() -> str:
    """The ```python block after the Python quickstart's marker."""
    text = README.read_text()
    assert text.count(PYTHON_MARKER) == 1
    after = text[text.index(PYTHON_MARKER) :]
    block = re.search(r"^```python\n(.*?)^```$", after, re.DOTALL | re.MULTILINE)
    assert block is not None, "the marker is followed by a ```python block"
    return block.group(1)


def test_the_readme_python_quickstart_stores_searches_and_plans(
    service: ServerProcess, tmp_path: Path
) -> None:
    introduction = README.read_text().split(PYTHON_MARKER)[0].rsplit("###", 1)[1]
    assert "pip install ./client" in introduction

    result = subprocess.run(
        [sys.executable, "-c", quickstart_script()],
        env=child_environment({"ITINERA_URL": service.base_url}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    stored, found, planned = result.stdout.splitlines()
    key = "guides/dahab/blue-hole.md"
    assert stored in (f"stored {key} (created)", f"stored {key} (replaced)")
    assert found == f"found [{key!r}]"
    assert planned == "planned Red Sea week final version 2"
