"""`sos phantom`: generate a labelled synthetic dataset (slices, cephalograms, CBCT series)."""

from __future__ import annotations

import argparse
import sys

EXIT_OK = 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "phantom",
        help="generate synthetic cranial-base phantoms with known SOS stage and box",
        description="Render N synthetic heads as mid-sagittal CBCT slices, lateral cephalograms "
        "and/or CBCT DICOM series into a dataset folder (manifest.jsonl, dataset.json), with "
        "fixed train/val/test splits. The same seed gives byte-identical files.",
    )
    parser.add_argument("--count", type=int, required=True, help="number of cases")
    parser.add_argument("--out", required=True, help="dataset folder (new or empty)")
    parser.add_argument(
        "--modality",
        nargs="+",
        action="extend",
        choices=("slice", "ceph", "cbct"),
        help="what to render per case (default: slice); several may be given",
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument(
        "--size", type=int, default=256, help="2-D image size in pixels (default 256)"
    )
    parser.add_argument(
        "--spacing", type=float, default=0.9, help="2-D pixel spacing in mm (default 0.9)"
    )
    parser.add_argument(
        "--cbct-size", type=int, default=256, help="CBCT voxels per axis (default 256)"
    )
    parser.add_argument(
        "--cbct-spacing", type=float, default=0.9, help="CBCT voxel size in mm (default 0.9)"
    )
    parser.add_argument(
        "--distribution",
        choices=("balanced", "natural"),
        default="balanced",
        help="balanced stages (default) or stages driven by a uniform age of 6-20 years",
    )
    parser.add_argument(
        "--bracket-rate", type=float, default=0.15, help="share of cases with orthodontic brackets"
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.png")
    parser.add_argument("--force", action="store_true", help="write into a folder that holds files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sos_core.phantom.dataset import DatasetConfig, generate_dataset
    from sos_core.phantom.preview import contact_sheet

    modalities = tuple(dict.fromkeys(args.modality or ["slice"]))
    cfg = DatasetConfig(
        count=args.count,
        modalities=modalities,
        seed=args.seed,
        size=args.size,
        spacing=args.spacing,
        cbct_size=args.cbct_size,
        cbct_spacing=args.cbct_spacing,
        distribution=args.distribution,
        bracket_rate=args.bracket_rate,
        workers=args.workers,
    )
    cfg.validate()
    with tqdm(total=args.count, desc="phantom", unit="case", file=sys.stderr) as bar:
        rows = generate_dataset(
            cfg, args.out, force=args.force, progress=lambda done, total: bar.update(1)
        )
    if args.preview:
        contact_sheet(rows, args.out, f"{args.out}/preview.png")
    sys.stdout.write(f"wrote {args.count} cases ({len(rows)} images) to {args.out}\n")
    return EXIT_OK
