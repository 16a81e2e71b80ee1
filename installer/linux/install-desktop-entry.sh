#!/usr/bin/env sh
# Add SOS Review to the desktop's application menu for this user (no root needed).
#   ./install-desktop-entry.sh              from the unpacked folder; run it again after moving it
#   ./install-desktop-entry.sh --uninstall  remove the menu entry and icon again
# A .desktop file needs absolute paths, so the one in this folder is copied with this folder's
# location filled in. The review store and settings are elsewhere and are never touched.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
entry="$data/applications/sos-review.desktop"
icon="$data/icons/hicolor/512x512/apps/sos-review.png"
if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$entry" "$icon"
    echo "Removed the SOS Review menu entry."
    exit 0
fi
mkdir -p "$(dirname "$entry")" "$(dirname "$icon")"
cp "$here/sos-review.png" "$icon"
sed -e "s|^Exec=.*|Exec=\"$here/SOSReview\" %f|" \
    -e "s|^TryExec=.*|TryExec=$here/SOSReview|" \
    -e "s|^Icon=.*|Icon=$icon|" \
    "$here/sos-review.desktop" > "$entry"
chmod 644 "$entry"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "Added SOS Review to the application menu ($entry)."
