"""The README's "Use with LangGraph", run as a user would: its command makes an API key
for the seeded demo admin, and its script, run by Python, pauses a graph at an interrupt
and resumes it, against the session's live service."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from tests.support.live_service import LiveService
from tests.support.processes import child_environment, real_server_environment, run_cli

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def block_after(marker: str, language: str) -> str:
    text = README.read_text()
    assert text.count(marker) == 1
    after = text[text.index(marker) :]
    block = re.search(rf"^```{language}\n(.*?)^```$", after, re.DOTALL | re.MULTILINE)
    assert block is not None, f"the marker is followed by a ```{language} block"
    return block.group(1)


def test_the_readme_langgraph_example_makes_a_key_pauses_a_graph_and_resumes_it(
    live_service: LiveService, tmp_path: Path
) -> None:
    env = real_server_environment(live_service.settings)
    seeded = run_cli("seed", env=env)  # the demo org, on the live service's database
    assert seeded.returncode == 0, seeded.stderr
    [command] = block_after("<!-- langgraph-key:", "sh").strip().splitlines()
    program, *args = shlex.split(command)
    assert program == ".venv/bin/itinera"
    created = run_cli(*args, env=env)
    assert created.returncode == 0, created.stderr
    api_key = msgspec.json.decode(created.stdout)["secret"]

    result = subprocess.run(
        [sys.executable, "-c", block_after("<!-- langgraph:", "python")],
        env=child_environment({"ITINERA_URL": live_service.base_url, "ITINERA_API_KEY": api_key}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "asked: Book this plan?",
        "waiting at: ('book',)",
        "booked: True",
        "steps: [2, 1, 0, -1]",
    ]
