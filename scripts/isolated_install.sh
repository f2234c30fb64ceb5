#!/usr/bin/env bash
# Build one package (or all) with --no-sources, install its wheel plus core's wheel into a
# fresh venv with only the package's declared dependencies (its [project] dependencies and
# its dev group, which holds pytest and test-only imports), and run that package's tests
# against the installed wheel (not the sources). An undeclared import fails here, because
# nothing else is installed. Core is installed twice: bare (the algebra, devices, readers
# and `widelab --help` must work without the report extra), then with [report] for its tests.
# Usage: scripts/isolated_install.sh [folder ...]   (default: every package)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
folders=("$@")
if [ ${#folders[@]} -eq 0 ]; then
  folders=(core $(ls packages | grep -v '^core$'))
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
uv build --quiet --no-sources --package widelab-core --out-dir "$work/dist" >/dev/null
for folder in "${folders[@]}"; do
  pkg="widelab-$folder"
  echo "== isolated install: $pkg"
  if [ "$folder" != core ]; then
    uv build --quiet --no-sources --package "$pkg" --out-dir "$work/dist" >/dev/null
  fi
  venv="$work/venv-$folder"
  uv venv --quiet -p 3.11 "$venv"
  mod=$(echo "widelab_$folder" | tr '-' '_')
  wheel=$(ls "$work"/dist/"$(echo "$pkg" | tr '-' '_')"-*.whl)
  core_wheel=$(ls "$work"/dist/widelab_core-*.whl)
  if [ "$folder" = core ]; then
    uv pip install --quiet --python "$venv" "$core_wheel"
    "$venv/bin/python" -c "import widelab_core.layers, widelab_core.datasets, widelab_core.devices"
    "$venv/bin/widelab" --help >/dev/null
    uv pip install --quiet --python "$venv" "$core_wheel[report]" --group "packages/core/pyproject.toml:dev"
  else
    uv pip install --quiet --python "$venv" "$core_wheel" "$wheel" \
      --group "packages/$folder/pyproject.toml:dev"
  fi
  # Run the tests from a copy outside the source tree so the wheel, not src/, is imported.
  # The workspace conftest goes one level above, so a package's own conftest.py is kept.
  mkdir -p "$work/iso-$folder"
  cp conftest.py "$work/iso-$folder/conftest.py"
  cp -r "packages/$folder/tests" "$work/iso-$folder/tests"
  (cd "$work/iso-$folder" && "$venv/bin/python" -c "import $mod, sys; assert 'site-packages' in $mod.__file__, $mod.__file__" \
    && "$venv/bin/python" -m pytest -q -p no:cacheprovider --import-mode=importlib -n auto --maxprocesses=4 \
       -W error -m "not slow" -o "markers=slow
gpu
integration" .)
done
echo "isolated install: ok (${folders[*]})"
