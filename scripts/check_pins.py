"""Check that every workspace member's range on widelab-core admits core's version.

uv does not check version ranges between workspace members, so a member could
silently depend on a core it is not compatible with. Run: ``python scripts/check_pins.py``.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def member_pyprojects() -> list[Path]:
    """Every ``packages/*/pyproject.toml``."""
    return sorted((ROOT / "packages").glob("*/pyproject.toml"))


def check() -> list[str]:
    """Return a list of problems (empty when every pin admits core's version)."""
    projects = {p: tomllib.loads(p.read_text())["project"] for p in member_pyprojects()}
    versions = {proj["name"]: Version(proj["version"]) for proj in projects.values()}
    problems = []
    if "widelab-core" not in versions:
        return ["packages/core/pyproject.toml not found"]
    for path, proj in projects.items():
        name = proj["name"]
        if not name.startswith("widelab-"):
            problems.append(f"{path}: distribution name {name!r} must start with 'widelab-'")
        folder = path.parent.name
        if name != f"widelab-{folder}":
            problems.append(f"{path}: name {name!r} does not match folder {folder!r}")
        for dep in proj.get("dependencies", []):
            req = Requirement(dep)
            if req.name not in versions:
                continue
            if not str(req.specifier):
                problems.append(f"{name}: dependency on {req.name} has no version range")
            elif versions[req.name] not in req.specifier:
                problems.append(
                    f"{name}: requires {req.name}{req.specifier} but the workspace has "
                    f"{req.name} {versions[req.name]}"
                )
            if req.name != "widelab-core":
                problems.append(f"{name}: depends on sibling {req.name} (only core is allowed)")
        if name != "widelab-core" and not any(
            Requirement(d).name == "widelab-core" for d in proj.get("dependencies", [])
        ):
            problems.append(f"{name}: does not depend on widelab-core")
    return problems


def main() -> int:
    problems = check()
    for p in problems:
        print(f"pin check: {p}", file=sys.stderr)
    if not problems:
        print(f"pin check: {len(member_pyprojects())} packages, every core range admits core")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
