#!/usr/bin/env bash
# Build the Linux one-folder bundle of SOS Review, self-test it, and pack it as a tarball.
#   installer/build_linux.sh              venv (reused) → PyInstaller → self-test → tarball → slow test
#   installer/build_linux.sh --no-test    skip the slow bundle test at the end (the test itself
#                                         builds this way; the self-test always runs)
#   installer/build_linux.sh --venv-only  only create or update the build virtualenv
# Environment:
#   SOS_BUILD_DIR    work folder (default out/installer): build/, dist/SOSReview/, the tarball
#   SOS_BUILD_VENV   build virtualenv (default out/installer-venv), never the project's .venv
#   SOS_TEST_PYTHON  a Python with pytest for the slow test (default .venv/bin/python)
#   PYTHON           interpreter for a new build venv (default python3; 3.11+, shared libpython)
# CPU work runs under `nice -n 19` so a build never starves other work on the machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
work="${SOS_BUILD_DIR:-$root/out/installer}"
venv="${SOS_BUILD_VENV:-$root/out/installer-venv}"
test_python="${SOS_TEST_PYTHON:-$root/.venv/bin/python}"
torch_pin="torch==2.13.0"        # the CPU wheel; a bare "torch" pulls a multi-GB CUDA build
pyinstaller_pin="pyinstaller==6.16.0"
run_tests=1
venv_only=0
for arg in "$@"; do
    case "$arg" in
        --no-test) run_tests=0 ;;
        --venv-only) venv_only=1 ;;
        *) echo "usage: installer/build_linux.sh [--no-test] [--venv-only]" >&2; exit 2 ;;
    esac
done
say() { printf '\n== %s\n' "$*" >&2; }
human() { numfmt --to=iec-i --suffix=B --format='%.1f' "$1"; }

# The project's runtime dependencies, read from pyproject.toml (the project itself is not
# installed: the spec takes code and resources from this checkout).
requirements() {
    "$1" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as fh:
    print("\n".join(tomllib.load(fh)["project"]["dependencies"]))
PY
}

setup_venv() {
    local py="$venv/bin/python" stamp="$venv/.sos-build-stamp" want
    want="$(cat pyproject.toml installer/build_linux.sh | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return
    fi
    say "Build virtualenv $venv"
    [ -x "$py" ] || "${PYTHON:-python3}" -m venv "$venv"
    nice -n 19 "$py" -m pip install --quiet --upgrade pip
    # Torch first, so the dependency "torch>=2.10" below is already met by the CPU wheel.
    nice -n 19 "$py" -m pip install --quiet "$torch_pin"
    requirements "$py" > "$venv/requirements.txt"
    nice -n 19 "$py" -m pip install --quiet -r "$venv/requirements.txt"
    nice -n 19 "$py" -m pip install --quiet "$pyinstaller_pin"
    echo "$want" > "$stamp"
}

setup_venv
[ "$venv_only" = 1 ] && exit 0
version="$("$venv/bin/python" -c 'import sos_core; print(sos_core.__version__)')"
dist="$work/dist/SOSReview"
tarball="$work/SOSReview-$version-linux-x86_64.tar.gz"
mkdir -p "$work"

say "PyInstaller (SOS Review $version)"
start=$SECONDS
rm -rf "$work/build" "$work/dist" "$tarball"
nice -n 19 "$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --workpath "$work/build" --distpath "$work/dist" installer/sos_review.spec
build_s=$((SECONDS - start))

say "Self-test of the bundle"
# A clean environment: no model override, no display; the bundle must find everything itself.
env -u SOS_MODEL_DIR -u SOS_DATA_DIR -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM \
    OMP_NUM_THREADS=1 nice -n 19 "$dist/SOSReview" --self-test

say "Tarball"
cp installer/linux/sos-review.desktop installer/linux/install-desktop-entry.sh "$dist/"
cp resources/icons/sos-review.png "$dist/sos-review.png"
# Readable by every user (model files are written 0600), so an install in /opt works for all.
chmod -R u+rwX,go+rX,go-w "$dist"
start=$SECONDS
tar -C "$work/dist" --owner=0 --group=0 --transform "s,^SOSReview,SOSReview-$version," \
    -cf - SOSReview | nice -n 19 gzip -6 > "$tarball"
pack_s=$((SECONDS - start))
unpacked="$(du -sb "$dist" | cut -f1)"
packed="$(stat -c %s "$tarball")"
echo "bundle:  $dist"
echo "tarball: $tarball"
echo "size:    $(human "$unpacked") unpacked, $(human "$packed") as tar.gz"
echo "time:    PyInstaller ${build_s} s, packing ${pack_s} s"

if [ "$run_tests" = 1 ]; then
    say "Slow bundle test (tests/installer/test_bundle.py)"
    SOS_BUNDLE_TARBALL="$tarball" OMP_NUM_THREADS=1 QT_QPA_PLATFORM=offscreen \
        nice -n 19 "$test_python" -m pytest -q -p no:cacheprovider -m slow tests/installer/test_bundle.py
fi
