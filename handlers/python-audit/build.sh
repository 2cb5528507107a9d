#!/bin/sh
# Builds handlers/python-audit.wasm from app.py with componentize-py
# (pip install componentize-py==0.25.1), against the host's WIT 0.2 world.
# Works from any directory; OUT=path writes the component there instead.
# componentize-py generates the Python bindings itself while it builds, so
# there is no bindings step and nothing generated to commit.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$root/handlers/python-audit.wasm}

command -v componentize-py > /dev/null || {
    echo "componentize-py is not on PATH: pip install componentize-py==0.25.1" >&2
    exit 1
}

# Build from a copy: componentize-py imports the app to snapshot it and
# would leave a __pycache__ in the source folder.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp "$here/app.py" "$src/"

# Write beside the target and rename, so the host's folder watcher never
# loads a half-written file.
componentize-py -q -d "$root/wit/v0.2" -w handler componentize -p "$src" -o "$out.tmp" app
mv "$out.tmp" "$out"
echo "built $out ($(wc -c < "$out") bytes)"
