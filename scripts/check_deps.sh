#!/usr/bin/env bash
# Check each package's declared dependencies against what its code imports (deptry,
# configured under [tool.deptry] in each package's pyproject.toml).
#   src/:   every import declared (DEP001/DEP003), nothing declared unused (DEP002),
#           no dev-only dependency imported (DEP004).
#   tests/: every import declared, in the package's dependencies or its dev group.
# Usage: scripts/check_deps.sh [folder ...]   (default: every package)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
folders=("$@")
if [ ${#folders[@]} -eq 0 ]; then
  folders=($(ls packages))
fi
for folder in "${folders[@]}"; do
  cfg="packages/$folder/pyproject.toml"
  echo "== deptry: $folder"
  uv run --no-sync deptry "packages/$folder/src" --config "$cfg"
  uv run --no-sync deptry "packages/$folder/tests" --config "$cfg" --ignore DEP002,DEP004
done
echo "dependency check: ok (${folders[*]})"
