"""Draw the SOS Review icon with Pillow (no downloads) into resources/icons/.

    .venv/bin/python installer/make_icon.py

Writes `sos-review.png` (512 px: Linux .desktop entry, window icon), `sos-review.ico` (Windows
executable and installer) and `sos-review.icns` (macOS .app). The picture: two bone blocks (the
sphenoid and the occipital clivus) meeting at a slanted synchondrosis, the gap half bridged from
the top as in stage 1, on a dark rounded square. Drawn at 4x and scaled down for smooth edges.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "icons"
SIZE = 512
SCALE = 4

BACKGROUND = (22, 44, 66, 255)
BONE = (236, 228, 208, 255)
BONE_EDGE = (188, 176, 150, 255)
CARTILAGE = (255, 140, 40, 255)  # the heat-map orange the app uses for attention


def _polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x * SCALE, y * SCALE) for x, y in points]


def draw(size: int = SIZE) -> Image.Image:
    """The icon as an RGBA image of `size` pixels."""
    big = SIZE * SCALE
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, big - 1, big - 1), radius=96 * SCALE, fill=BACKGROUND)
    # Sphenoid body (left) and clivus (right); the synchondrosis runs between them at a slant.
    sphenoid = [(70, 150), (250, 120), (290, 400), (96, 380)]
    clivus = [(300, 116), (450, 150), (430, 420), (336, 396)]
    for shape in (sphenoid, clivus):
        d.polygon(_polygon(shape), fill=BONE, outline=BONE_EDGE, width=6 * SCALE)
    # The cartilage band, with bone bridging its upper (endocranial) half.
    d.polygon(_polygon([(250, 120), (300, 116), (336, 396), (290, 400)]), fill=CARTILAGE)
    d.polygon(_polygon([(248, 118), (302, 114), (318, 250), (268, 254)]), fill=BONE)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    icon = draw()
    icon.save(OUT / "sos-review.png", optimize=True)
    icon.save(OUT / "sos-review.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    icon.save(OUT / "sos-review.icns")
    sys.stdout.write(f"wrote {', '.join(sorted(p.name for p in OUT.glob('sos-review.*')))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
