"""`sos inspect PATH...`: say what each input loads as, or why it cannot be used."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sos_core.errors import ImagingError, SeriesNotChosen

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "inspect",
        help="show what a DICOM file, series folder, DICOMDIR or PNG/JPEG/TIFF loads as",
        description="For each input, print what was loaded (kind, modality, shape, spacing, "
        "orientation, series found, the mid-sagittal slice of a volume, warnings) or the reason "
        "it cannot be used. Exit 0 when every input loaded, 2 when one could not be used.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or DICOMDIR")
    parser.add_argument("--json", action="store_true", help="one JSON object per input")
    parser.add_argument("--series", help="series key to open when a folder holds several")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sos_core.imaging import open_study

    status = EXIT_OK
    for path in args.paths:
        try:
            study = open_study(path, series=args.series)
        except ImagingError as exc:
            status = EXIT_BAD_INPUT
            _emit_error(path, exc, as_json=args.json)
            continue
        _emit(describe(path, study), as_json=args.json)
    return status


def describe(path: str, study: Any) -> dict[str, Any]:
    """A JSON-ready summary of a loaded Study."""
    info: dict[str, Any] = {
        "source": str(path),
        "ok": True,
        "kind": study.kind,
        "modality": study.modality,
        "shape": list(study.shape),
        "dtype": str(study.pixels.dtype),
        "spacing_mm": list(study.spacing) if study.spacing else None,
        "direction": [list(r) for r in study.direction] if study.direction else None,
        "window": list(study.window) if study.window else None,
        "description": study.description,
        "series": [
            {"key": s.key, "modality": s.modality, "description": s.description, "files": s.n_files}
            for s in study.series
        ],
        "warnings": list(study.warnings),
    }
    if study.is_volume:
        from sos_core.imaging.midsagittal import find_midsagittal
        from sos_core.imaging.reformat import sagittal_count

        info["midsagittal_slice"] = int(find_midsagittal(study))
        info["sagittal_slices"] = int(sagittal_count(study))
    return info


def _emit(info: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(info) + "\n")
        return
    lines = [f"{info['source']}:"]
    lines.append(
        f"  {info['kind']} · {info['modality']} · shape {tuple(info['shape'])} ({info['dtype']})"
    )
    spacing = info["spacing_mm"]
    lines.append(
        "  spacing: " + (" × ".join(f"{s:.3g}" for s in spacing) + " mm" if spacing else "unknown")
    )
    if info["direction"]:
        lines.append(f"  orientation (LPS columns): {info['direction']}")
    if "midsagittal_slice" in info:
        lines.append(
            f"  mid-sagittal slice: {info['midsagittal_slice']} of {info['sagittal_slices']}"
        )
    if len(info["series"]) > 1:
        lines.append(f"  series found: {len(info['series'])}")
        lines.extend(
            f"    {s['key']}: {s['modality']} {s['description']} ({s['files']} files)"
            for s in info["series"]
        )
    lines.extend(f"  warning: {w}" for w in info["warnings"])
    sys.stdout.write("\n".join(lines) + "\n")


def _emit_error(path: str, exc: ImagingError, *, as_json: bool) -> None:
    sys.stderr.write(f"sos: {exc}\n")
    if isinstance(exc, SeriesNotChosen):
        for s in exc.series:
            sys.stderr.write(
                f"  --series {s.key}: {s.modality} {s.description} ({s.n_files} files)\n"
            )
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "source": str(path),
                    "ok": False,
                    "error": type(exc).__name__,
                    "message": str(exc),
                }
            )
            + "\n"
        )
