"""Cross-package checks of the workspace's shape: every member follows the same contract."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = [ROOT / "shared", *sorted(p for p in (ROOT / "packages").glob("*") if p.is_dir())]


def _project(member: Path) -> dict:
    return tomllib.loads((member / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_member_layout(member):
    project = _project(member)
    name = project["name"]
    import_name = name.replace("-", "_")
    assert (member / "src" / import_name / "__init__.py").is_file()
    assert (member / "src" / import_name / "__main__.py").is_file(), "python -m <name> must work"
    assert (member / "README.md").is_file()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["scripts"].get(name) == f"{import_name}.cli:main"
    if member.parent.name == "packages":
        for item in ("CHANGELOG.md", "bench", "tests"):
            assert (member / item).exists(), f"{member.name} lacks {item}"


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_console_script_help(member):
    import_name = _project(member)["name"].replace("-", "_")
    out = subprocess.run(
        [sys.executable, "-m", import_name, "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_no_python_file_reads_the_sibling_shared_folder():
    sibling = "../" + "shared"  # spelled in two parts so this file does not match itself
    offenders = [
        p
        for base in ("shared", "packages", "tests")
        for p in (ROOT / base).rglob("*.py")
        if sibling in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
