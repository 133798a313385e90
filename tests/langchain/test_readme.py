"""The README's "Use with LangChain", run as a user would: its command makes an API key
for the seeded demo admin, and its script, run by Python, stores documents and asks a
retriever, against a live service with the default embedding dimension."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from itinera.settings import Settings
from tests.langchain.services import dimensioned_service
from tests.support.live_service import LiveService
from tests.support.processes import child_environment, real_server_environment, run_cli
from tests.support.servers import PostgresServer

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def block_after(marker: str, language: str) -> str:
    text = README.read_text()
    assert text.count(marker) == 1
    after = text[text.index(marker) :]
    block = re.search(rf"^```{language}\n(.*?)^```$", after, re.DOTALL | re.MULTILINE)
    assert block is not None, f"the marker is followed by a ```{language} block"
    return block.group(1)


@pytest.fixture(scope="module")
async def service(postgres: PostgresServer, redis_url: str) -> AsyncIterator[LiveService]:
    """The README's script embeds with the service's default dimension."""
    async with dimensioned_service(postgres, redis_url, Settings().embedding_dim) as service:
        seeded = run_cli("seed", env=real_server_environment(service.settings))
        assert seeded.returncode == 0, seeded.stderr
        yield service


def run_script(script: str, base_url: str, api_key: str, cwd: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=child_environment({"ITINERA_URL": base_url, "ITINERA_API_KEY": api_key}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def test_the_readme_langchain_example_makes_a_key_stores_documents_and_retrieves(
    service: LiveService, tmp_path: Path
) -> None:
    [command] = block_after("<!-- langchain-key:", "sh").strip().splitlines()
    program, *args = shlex.split(command)
    assert program == ".venv/bin/itinera"
    created = run_cli(*args, env=real_server_environment(service.settings))
    assert created.returncode == 0, created.stderr
    api_key = msgspec.json.decode(created.stdout)["secret"]
    script = block_after("<!-- langchain:", "python")

    first = run_script(script, service.base_url, api_key, tmp_path)
    again = run_script(script, service.base_url, api_key, tmp_path)

    assert sorted(first) == [
        "sites/blue-hole {'region': 'red-sea', 'max_depth_m': 56}",
        "sites/thistlegorm {'region': 'red-sea', 'max_depth_m': 30}",
    ]
    assert again == first  # the same ids: replaced, not added
