"""The README is read in a clone: every file it links to must be inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_links_only_to_files_in_the_repository():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)", text) + re.findall(r"`(\.\./[^`]+)`", text)
    local = [link for link in links if "://" not in link]
    assert local, "the README links to its docs"
    for link in local:
        target = (ROOT / link).resolve()
        assert target.is_relative_to(ROOT), f"{link} points outside the repository"
        assert target.exists(), f"{link} does not exist"


def test_the_probe_figures_name_their_baseline():
    text = (ROOT / "README.md").read_text()
    assert "97.2%" in text and "96.3%" in text
