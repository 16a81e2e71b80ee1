"""`sos predict` and `sos info`: stage predictions from the command line."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from sos_core.errors import SosError

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict the SOS fusion stage of files, folders or series",
        description="Predict the fusion stage with Grad-CAM and review flags. A volume is staged "
        "on its automatic mid-sagittal slice. Exit 0 when every input was staged, 2 when an "
        "input could not be used (its reason on stderr), 1 on an internal fault.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM file, series folder, PNG...")
    p.add_argument("--json", action="store_true", help="one JSON object per input on stdout")
    p.add_argument(
        "--overlay",
        metavar="OUT.png",
        help="write image + heat map + box + stage (one input: this file; several: "
        "OUT-1.png, OUT-2.png, ...)",
    )
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--model", metavar="DIR", help="model folder (default: the embedded student)")
    p.add_argument(
        "--slice",
        type=int,
        help="sagittal slice index of a volume, from 0 as in --json (default: automatic)",
    )
    p.add_argument("--series", help="series key when a folder holds several")
    p.add_argument(
        "--neighbours",
        type=int,
        default=0,
        metavar="K",
        help="volumes: also stage K sagittal slices either side and average; reports how many "
        "agree (default 0)",
    )
    p.set_defaults(func=run_predict)
    p = sub.add_parser(
        "info",
        help="versions, the compute device, and the active model card",
        description="Print versions, the device found and the active model card.",
    )
    p.add_argument("--model", metavar="DIR", help="model folder (default: the embedded student)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_info)


def prediction_json(source: str, prediction: Any) -> dict[str, Any]:
    """The JSON object DESIGN.md specifies for one input (everything but the raw map)."""
    return {
        "source": source,
        "stage": prediction.stage,
        "stage_name": prediction.stage_name,
        "probabilities": [round(p, 6) for p in prediction.probabilities],
        "flags": list(prediction.flags),
        "messages": list(prediction.messages),
        "model_version": prediction.model_version,
        "device": prediction.device,
        "slice": prediction.slice_index,
        "box": [round(v, 2) for v in prediction.box] if prediction.box else None,
        "seconds": round(prediction.seconds, 4),
        **_neighbour_fields(prediction.extra),
        # An image whose file does not say its kind: the kind it was read as (Predictor).
        **({"read_as": prediction.extra["read_as"]} if "read_as" in prediction.extra else {}),
    }


def _neighbour_fields(extra: dict[str, Any]) -> dict[str, Any]:
    """With --neighbours: the slices staged, their own stages and the share that agree."""
    if "agreement" not in extra:
        return {}
    return {
        "slices": extra["slices"],
        "slice_stages": extra["slice_stages"],
        "agreement": round(float(extra["agreement"]), 4),
    }


def _overlay_path(base: str, index: int, total: int) -> Path:
    p = Path(base)
    return p if total == 1 else p.with_name(f"{p.stem}-{index + 1}{p.suffix or '.png'}")


def expand_inputs(paths: list[str]) -> list[str]:
    """A folder of cases (images, sub-folders, a dataset manifest) becomes its cases, in the
    desktop worklist's sense; a series folder, a DICOMDIR folder and a file stay one input."""
    from sos_core.worklist import discover_cases

    out: list[str] = []
    for path in paths:
        try:
            cases = discover_cases(Path(path)) if Path(path).is_dir() else None
        except OSError:
            cases = None  # opening it says what is wrong
        out.extend([str(c.path) for c in cases] if cases else [path])
    return out


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sos_core.imaging import open_study
    from sos_core.inference.overlay import write_overlay
    from sos_core.inference.predictor import Predictor
    from sos_core.preprocess import image_from_study

    predictor = Predictor(args.model, device=args.device)
    status = EXIT_OK
    paths = expand_inputs(args.paths)
    for i, path in enumerate(tqdm(paths, file=sys.stderr, disable=len(paths) < 2, unit="input")):
        try:
            study = open_study(path, series=args.series)
            prediction = predictor.predict(study, slice=args.slice, neighbours=args.neighbours)
            if args.overlay:
                image, _ = image_from_study(study, prediction.slice_index)
                write_overlay(_overlay_path(args.overlay, i, len(paths)), image, prediction)
        except SosError as exc:
            status = EXIT_BAD_INPUT
            sys.stderr.write(f"sos: {exc}\n")
            continue
        if args.json:
            sys.stdout.write(json.dumps(prediction_json(str(path), prediction)) + "\n")
        else:
            probs = max(prediction.probabilities)
            line = f"{path}: stage {prediction.stage} ({prediction.stage_name}, {probs:.0%})"
            if prediction.slice_index is not None:
                i = prediction.slice_index  # counted from 1 as in the app; --slice, JSON: index
                line += f" on sagittal slice {i + 1} (index {i})"
            if "agreement" in prediction.extra:
                slices = prediction.extra["slices"]
                line += (
                    f", averaged over slices {slices[0] + 1}-{slices[-1] + 1} "
                    f"({prediction.extra['agreement']:.0%} agree)"
                )
            sys.stdout.write(line + "\n")
            for message in prediction.messages:
                sys.stdout.write(f"  review: {message}\n")
    return status


def run_info(args: argparse.Namespace) -> int:
    import numpy
    import pydicom
    import torch

    from sos_core import __version__
    from sos_core.device import choose_device
    from sos_core.inference.predictor import default_model_dir
    from sos_core.models.model_file import read_card

    device = choose_device(None)
    folder = Path(args.model) if args.model else default_model_dir()
    info: dict[str, Any] = {
        "sos_review": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pydicom": pydicom.__version__,
        "device": str(device),
        "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "model_dir": str(folder),
    }
    try:
        card = read_card(folder)
        info["model"] = {k: v for k, v in card.to_dict().items() if k != "metrics"}
        info["model"]["validation"] = card.to_dict()["metrics"].get("validation")
    except SosError as exc:
        info["model"] = None
        info["model_problem"] = str(exc)
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return EXIT_OK
    for key, value in info.items():
        if key != "model":
            sys.stdout.write(f"{key}: {value}\n")
    model = info.get("model")
    if model:
        sys.stdout.write(
            f"model: {model['name']} {model['version']} ({model['architecture']}, input "
            f"{model['input_size'][0]} px, scheme {model['stage_scheme']})\n"
        )
        from sos_core.inference.study_inputs import MODALITY_NAMES

        for modality, size in (model.get("modality_input_sizes") or {}).items():
            name = MODALITY_NAMES.get(modality, modality)
            sys.stdout.write(f"  reads {name} at {size[0]} px\n")
        zoom = (model.get("preprocessing") or {}).get("zoom")
        if zoom:  # a student with the second look (sos_core.inference.zoom)
            sys.stdout.write(
                f"  reads each image twice: whole, then a {zoom['size']} px zoom on the "
                "region its map points at\n"
            )
        sys.stdout.write(
            f"  trained on: {model['training_data']}\n  intended use: {model['intended_use']}\n"
        )
    return EXIT_OK
