"""Workspace-level contracts: plug-ins, package layout, no sibling imports."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from widelab_core import cli

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
EXPECTED = {"core", "kernels", "bayes", "recsys", "games", "lm-hallucination"}


def _module(folder: Path) -> str:
    return "widelab_" + folder.name.replace("-", "_")


def test_all_members_present():
    assert {p.name for p in PACKAGES} == EXPECTED


def test_every_package_registers_a_command():
    names = {c.name for c in cli.discover()}
    assert {"core", "kernels", "bayes", "recsys", "games", "lm"} <= names


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda p: p.name)
def test_package_layout(folder):
    meta = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    assert meta["name"] == f"widelab-{folder.name}"
    src = folder / "src" / _module(folder)
    for f in ("README.md", "CHANGELOG.md"):
        assert (folder / f).is_file(), f
    assert (src / "py.typed").is_file()
    assert not (folder / "tests" / "__init__.py").exists()
    assert meta["version"] in (folder / "CHANGELOG.md").read_text()
    mod = __import__(_module(folder))
    assert mod.__version__ == meta["version"]


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda p: p.name)
def test_no_sibling_imports(folder):
    own = _module(folder)
    siblings = {_module(p) for p in PACKAGES} - {own, "widelab_core"}
    for path in (folder / "src").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in siblings, f"{path} imports {name}"


def test_widelab_help_runs_as_a_script():
    out = subprocess.run(
        [sys.executable, "-m", "widelab_core.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "report" in out


def _private_imports(path: Path, own: str | None) -> list[str]:
    """Imports in ``path`` of another widelab package's private (``_``) modules or names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [(node.module, a.name) for a in node.names]
        else:
            continue
        for module, name in targets:
            parts = module.split(".")
            if not parts[0].startswith("widelab_") or parts[0] == own:
                continue
            dotted = parts[1:] + ([name] if name else [])
            if any(p.startswith("_") and not p.startswith("__") for p in dotted):
                found.append(
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {module}"
                    + (f".{name}" if name else "")
                )
    return found


def test_no_imports_of_other_packages_private_modules():
    """A package (or a workspace test) uses only another package's public modules."""
    owners = [(p, _module(p)) for p in PACKAGES] + [(ROOT / "tests", None)]
    found = []
    for folder, own in owners:
        for path in sorted(folder.rglob("*.py")):
            found += _private_imports(path, own)
    assert not found, "private imports across packages:\n" + "\n".join(found)


def test_private_import_check_sees_a_violation(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from widelab_core.layers._base import check_single\n"
        "import widelab_core._x\n"
        "from widelab_core.layers import _private\n"
        "from widelab_core.extend import check_single\n"
        "from widelab_bayes._own import x\n"
    )
    found = _private_imports(bad, "widelab_bayes")
    assert [f.split(":")[1].split()[0] for f in found] == ["1", "2", "3"]


def test_every_package_command_is_installed_with_a_version():
    assert set(cli.plugin_entry_points()) == {"kernels", "bayes", "recsys", "games", "lm"}
    assert set(cli.versions()) == {"core", "kernels", "bayes", "recsys", "games", "lm"}
