"""The README documents every setting the service reads."""

from __future__ import annotations

from pathlib import Path

from itinera.settings import Settings, env_name

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_setting() -> None:
    text = README.read_text()
    missing = [env_name(f) for f in Settings.__struct_fields__ if f"`{env_name(f)}`" not in text]
    assert missing == []
