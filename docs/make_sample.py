"""Regenerate the bundled sample in resources/samples/ from the phantom.

One mid-sagittal CBCT slice and one lateral cephalogram (16-bit PNG + DICOM DX) for each of the
four stages, plus one small CBCT series (128³ at 1.6 mm) so the app's volume path can be tried.
Deterministic: run it again and the files are the same.

    .venv/bin/python docs/make_sample.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sos_core.phantom.dataset import DatasetConfig, generate_dataset  # noqa: E402

OUT = ROOT / "resources" / "samples"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        flat = Path(tmp) / "flat"
        rows = generate_dataset(
            DatasetConfig(count=16, modalities=("slice", "ceph"), seed=11), flat
        )
        vol = Path(tmp) / "vol"
        vol_rows = generate_dataset(
            DatasetConfig(count=1, modalities=("cbct",), seed=12, cbct_size=128, cbct_spacing=1.6),
            vol,
        )
        chosen: dict[int, str] = {}
        for row in rows:
            chosen.setdefault(int(row["stage"]), row["case_id"])
        keep = [r for r in rows if chosen.get(int(r["stage"])) == r["case_id"]]
        if OUT.exists():
            shutil.rmtree(OUT)
        OUT.mkdir(parents=True)
        for row in keep:
            for key in ("file", "dicom"):
                if key in row:
                    dest = OUT / row[key]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(flat / row[key], dest)
        shutil.copytree(vol / vol_rows[0]["file"], OUT / "cbct" / "series_000")
        vol_row = {**vol_rows[0], "file": "cbct/series_000", "case_id": "cbct_000"}
        lines = [json.dumps(r, sort_keys=True) for r in sorted(keep, key=lambda r: r["stage"])]
        lines.append(json.dumps(vol_row, sort_keys=True))
        (OUT / "manifest.jsonl").write_text("\n".join(lines) + "\n")
        (OUT / "README.md").write_text(
            "# Bundled sample\n\nSynthetic phantom cases made by `docs/make_sample.py` "
            "(no patient data): a mid-sagittal CBCT slice and a lateral cephalogram for each "
            "stage, and one small CBCT series. `manifest.jsonl` holds the ground truth.\n"
        )
    print(f"wrote {len(keep)} images and one CBCT series to {OUT}")


if __name__ == "__main__":
    main()
