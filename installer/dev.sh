#!/usr/bin/env bash
# One entry point for a fresh clone: sets up .venv if needed, then runs what was asked.
#   installer/dev.sh app    start the desktop app on the bundled sample
#   installer/dev.sh test   run the whole test suite headless
#   installer/dev.sh sos …  run the `sos` command line
# Set-up is skipped when pyproject.toml has not changed since the last one (a stamp file).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.sos-setup-stamp"
want="$(sha256sum pyproject.toml installer/dev.sh | sha256sum | cut -d' ' -f1)"

setup() {
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    local py="$venv/bin/python"
    "$py" -m pip install --quiet --upgrade pip >/dev/null
    # Torch first: a bare "torch>=2.10" with no torch installed pulls a multi-GB CUDA build.
    # On a machine without a GPU the pinned CPU wheel satisfies the package's range.
    if ! "$py" -c "import torch" 2>/dev/null; then
        if command -v nvidia-smi >/dev/null 2>&1; then
            "$py" -m pip install --quiet "torch>=2.10"
        else
            "$py" -m pip install --quiet "torch==2.13.0"
        fi
    fi
    "$py" -m pip install --quiet -e ".[dev]"
    echo "$want" > "$stamp"
}

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Setting up $venv (first run or changed dependencies)…" >&2
    setup
fi
export PATH="$venv/bin:$PATH"

cmd="${1:-app}"
shift || true
case "$cmd" in
    app)
        if [ -f "$root/sos_desktop/app.py" ]; then
            exec "$venv/bin/sos-review" "$@"
        fi
        # Until the desktop app lands: describe the bundled sample with the command line.
        exec "$venv/bin/sos" inspect "$root"/resources/samples/*
        ;;
    test)
        export QT_QPA_PLATFORM=offscreen
        "$venv/bin/lint-imports" --no-cache >/dev/null || { "$venv/bin/lint-imports" --no-cache; exit 1; }
        exec "$venv/bin/python" -m pytest -q "$@"
        ;;
    sos)
        exec "$venv/bin/sos" "$@"
        ;;
    *)
        echo "usage: installer/dev.sh [app|test|sos ARGS...]" >&2
        exit 2
        ;;
esac
