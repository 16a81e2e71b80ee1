#!/usr/bin/env bash
# Build "SOS Review.app" with PyInstaller (the spec's BUNDLE step), self-test it, and pack a .dmg.
#   installer/macos/build_macos.sh
# Needs: macOS 12+, Python 3.11+ from python.org (universal2) or Homebrew, Xcode command-line tools
# (codesign, hdiutil). Builds for the machine's own architecture (arm64 or x86_64); make one per
# architecture. Environment as in build_linux.sh; SOS_CODESIGN_IDENTITY (a "Developer ID
# Application: ..." identity) signs with the hardened runtime instead of the ad-hoc signature,
# after which the .dmg still has to be notarised (xcrun notarytool submit --wait, then
# xcrun stapler staple) before Gatekeeper lets other Macs open it.
# NOT TRIED: written on Linux; mirrors installer/build_linux.sh step by step.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
work="${SOS_BUILD_DIR:-$root/out/installer}"
venv="${SOS_BUILD_VENV:-$root/out/installer-venv}"
py="$venv/bin/python"
arch="$(uname -m)"

[ -x "$py" ] || "${PYTHON:-python3}" -m venv "$venv"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "torch==2.13.0"  # PyPI's macOS wheel: CPU and Apple MPS
"$py" - > "$venv/requirements.txt" <<'PY'
import tomllib
with open("pyproject.toml", "rb") as fh:
    print("\n".join(tomllib.load(fh)["project"]["dependencies"]))
PY
"$py" -m pip install --quiet -r "$venv/requirements.txt"
"$py" -m pip install --quiet "pyinstaller==6.16.0"
version="$("$py" -c 'import sos_core; print(sos_core.__version__)')"

start=$SECONDS
rm -rf "$work/build" "$work/dist"
# The spec reads SOS_CODESIGN_IDENTITY itself (a .spec build takes no signing options).
"$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --workpath "$work/build" --distpath "$work/dist" installer/sos_review.spec
echo "PyInstaller: $((SECONDS - start)) s"
app="$work/dist/SOS Review.app"

env -u SOS_MODEL_DIR -u SOS_DATA_DIR "$app/Contents/MacOS/SOSReview" --self-test

# The disk image: the app and a link to /Applications to drag it onto.
stage="$work/dmg"
rm -rf "$stage"
mkdir -p "$stage"
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
dmg="$work/SOSReview-$version-macos-$arch.dmg"
rm -f "$dmg"
hdiutil create -volname "SOS Review $version" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$dmg"
echo "size: $(du -sh "$app" | cut -f1) app, $(du -sh "$dmg" | cut -f1) dmg"
