#!/usr/bin/env bash
# Create (or reuse) the virtualenv of an older Phoenix server for the compatibility tests.
#
#   tests/phoenix_versions/install.sh [VERSION]    # default: the version in oldest.txt
#
# The venv lives at ${PHOENIX_VENVS_DIR:-~/.cache/portkey-phoenix-ingest}/phoenix-VERSION and
# is reused while its marker matches the version and constraints file. Prints the venv path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${1:-$(tr -d '[:space:]' < "$here/oldest.txt")}"
constraints="$here/constraints-$version.txt"
[[ -f "$constraints" ]] || { echo "no constraints file $constraints" >&2; exit 2; }
venv="${PHOENIX_VENVS_DIR:-$HOME/.cache/portkey-phoenix-ingest}/phoenix-$version"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"  # Phoenix 12.x: 3.10-3.13
marker="$venv/.installed"
want="arize-phoenix==$version $(sha256sum "$constraints" | cut -c1-16)"

if [[ -f "$marker" && "$(cat "$marker")" == "$want" && -x "$venv/bin/phoenix" ]] \
    && "$venv/bin/python" -c 'import phoenix.server' 2>/dev/null; then
    echo "$venv"
    exit 0
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet "arize-phoenix==$version" -c "$constraints" >&2
echo "$want" > "$marker"
echo "$venv"
