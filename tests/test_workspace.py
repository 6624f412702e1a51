"""Cross-package checks of the workspace's shape: every member follows the same contract."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = [ROOT / "shared", *sorted(p for p in (ROOT / "packages").glob("*") if p.is_dir())]
PACKAGES = [m for m in MEMBERS if m.parent.name == "packages"]

#: The package README template (root README, "The package README"): these `##` headings, in
#: this order; other sections may sit between them.
README_SECTIONS = (
    "What it does",
    "Install",
    "Quickstart",
    "Command line",
    "Benchmark",
    "Differences from the paper and the official code",
    "Tests",
)

#: Flags every package's `bench` offers, and the ones offered only when BenchSpec.uses says so.
BENCH_ALWAYS = ("--quick", "--out", "--json", "--verbose", "--quiet")
BENCH_OPTIONAL = {"seeds": "--seeds", "data_root": "--data-root", "device": "--device"}


def _project(member: Path) -> dict:
    return tomllib.loads((member / "pyproject.toml").read_text())["project"]


def _import_name(member: Path) -> str:
    return _project(member)["name"].replace("-", "_")


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_member_layout(member):
    project = _project(member)
    name = project["name"]
    import_name = name.replace("-", "_")
    assert (member / "src" / import_name / "__init__.py").is_file()
    assert (member / "src" / import_name / "__main__.py").is_file(), "python -m <name> must work"
    assert (member / "README.md").is_file()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    # labcore's command lives apart from its CLI conventions (labcore.commands).
    module = "commands" if import_name == "labcore" else "cli"
    assert project["scripts"].get(name) == f"{import_name}.{module}:main"
    if member.parent.name == "packages":
        for item in ("CHANGELOG.md", "bench", "tests", f"src/{import_name}/bench.py"):
            assert (member / item).exists(), f"{member.name} lacks {item}"


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_console_script_help(member):
    out = subprocess.run(
        [sys.executable, "-m", _import_name(member), "--help"], capture_output=True, text=True
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


# ---------------------------------------------------------------------------------------------
# One bench contract


@pytest.mark.parametrize("member", PACKAGES, ids=lambda p: p.name)
def test_bench_spec_and_run_bench_signature(member):
    from labcore.bench import BenchConfig, BenchReport, BenchSpec

    name = _import_name(member)
    bench = importlib.import_module(f"{name}.bench")
    spec = bench.BENCH
    assert isinstance(spec, BenchSpec)
    assert spec.package == _project(member)["name"]
    assert spec.version == _project(member)["version"]
    assert spec.run is bench.run_bench
    sig = inspect.signature(bench.run_bench)
    assert list(sig.parameters) == ["config"]
    hints = {k: str(v) for k, v in bench.run_bench.__annotations__.items()}
    assert hints.get("config") in ("BenchConfig", str(BenchConfig))
    assert hints.get("return") in ("BenchReport", str(BenchReport))


def test_run_bench_has_one_signature_everywhere():
    found = []
    for path in (ROOT / "packages").rglob("*.py"):
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name == "run_bench":
                args = node.args
                found.append(
                    (
                        path.relative_to(ROOT).as_posix(),
                        [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs],
                        ast.unparse(node.returns) if node.returns else None,
                    )
                )
    assert found, "no run_bench found"
    bad = [f for f in found if f[1] != ["config"] or f[2] != "BenchReport"]
    assert bad == [], "every run_bench is `def run_bench(config: BenchConfig) -> BenchReport`"


def _help_text(module: str, *argv: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", module, *argv, "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("member", PACKAGES, ids=lambda p: p.name)
def test_bench_offers_the_same_flags_policy(member):
    name = _import_name(member)
    spec = importlib.import_module(f"{name}.bench").BENCH
    text = _help_text(name, "bench")
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
    for flag in BENCH_ALWAYS:
        assert flag in flags, f"{name} bench lacks {flag}"
    assert "--seed" not in flags, "bench takes --seeds, never --seed"
    for key, flag in BENCH_OPTIONAL.items():
        assert (flag in flags) == (key in spec.uses), (
            f"{name} bench: {flag} must be offered exactly when BENCH.uses names {key!r}"
        )
    assert "bench/results" in " ".join(text.split()), "the default output folder is the shared one"


_OWN_FOLDER_RULE = re.compile(
    r"""results-quick|bench-results|["']bench/|Path\(\s*["']bench["']\s*\)|tables\.md|comparison\.md"""
)


@pytest.mark.parametrize("member", PACKAGES, ids=lambda p: p.name)
def test_no_package_has_its_own_output_folder_rule(member):
    offenders = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in sorted((member / "src").rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if _OWN_FOLDER_RULE.search(line)
    ]
    assert offenders == [], "output folders come from labcore.bench.default_out_dir"


@pytest.mark.parametrize("member", PACKAGES, ids=lambda p: p.name)
def test_committed_results_follow_the_one_folder_rule(member):
    for results in (member / "bench").rglob("results.json"):
        folder = results.parent.relative_to(member).as_posix()
        assert folder in ("bench/results", "bench/results-quick"), results
    for stray in ("tables.md", "comparison.md"):
        assert not list((member / "bench").rglob(stray)), f"summary tables are summary.md: {stray}"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_library_code_never_imports_a_cli_module(member):
    name = _import_name(member)
    cli_modules = {"labcore.cli", f"{name}.cli"}
    entry_points = {"cli.py", "__main__.py", "commands.py" if name == "labcore" else "cli.py"}
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((member / "src" / name).rglob("*.py"))
        if p.name not in entry_points and _imports(p) & cli_modules
    ]
    assert offenders == [], "library code shows progress through labcore.progress"


@pytest.mark.parametrize("member", PACKAGES, ids=lambda p: p.name)
def test_readme_follows_the_template(member):
    text = (member / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == f"# {_project(member)['name']}", "the README starts with `# <name>`"
    headings = [line[3:].strip() for line in lines if line.startswith("## ")]
    positions = []
    for section in README_SECTIONS:
        assert section in headings, f"{member.name}/README.md lacks `## {section}`"
        positions.append(headings.index(section))
    assert positions == sorted(positions), f"{member.name}/README.md: sections out of order"
    bench = text.split("## Benchmark", 1)[1].split("\n## ", 1)[0]
    name = _project(member)["name"]
    assert re.search(rf"`{re.escape(name)} bench[^`]*`", bench), "state the command that made it"
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", bench), "state the date the results were made"
    assert re.search(r"\b[0-9a-f]{7,40}\b", bench), "state the commit the results were made at"


# The benches built on layerwise.bench.run_rows: (package, has the llmcompressor cross-check rows)
LAYERWISE_BENCHES = [
    ("layerwise", True),
    ("quantease", False),
    ("alps", False),
    ("osscar", False),
    ("hasslefree", False),
]


@pytest.mark.parametrize("package,cross_check", LAYERWISE_BENCHES)
def test_layerwise_benches_offer_exactly_the_flags_they_read(package, cross_check, capsys):
    bench = importlib.import_module(f"{package}.bench").BENCH
    main = importlib.import_module(f"{package}.cli").main
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert bench.uses == {"seeds", "device"}
    assert "--seeds" in out and "--device" in out and "--data-root" not in out
    for own in ("--model", "--only", "--calib-windows", "--eval-windows", "--seqlen"):
        assert own in out
    # only a bench with cross-check rows offers the flag for them
    assert ("--llmcompressor-python" in out) is cross_check
