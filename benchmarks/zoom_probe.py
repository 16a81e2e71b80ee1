"""Probe: how well do trained students and teachers read SOS crops, true or found by Grad-CAM?

For each model pair (student, teacher) and each modality on one split, prints accuracy of:
the student on the full image; the student and the teacher on crops around the true box at
several scales; and both on crops around the student's own Grad-CAM peak (box side = the
median training box side). Answers whether a zoomed second pass could close the student's gap
to its teacher on cephalograms, before any training is spent on it.

    python benchmarks/zoom_probe.py --data out/pv/data --pair seed0 resources/models/student \
        resources/models/teacher --pair seed1 out/pv6/shipped-seed1/models/student ...

With --mixes NAME FOLDER (a student trained with the second look) it reports that student's
accuracy with the crop reading weighted 0 (the full image alone), 0.25, ..., 1 (the crop alone).
With --centring NAME FOLDER TEACHER, its crop reading and the teacher's with the crop centred on
the true box, on the map's peak, or on the centroid of the map above half its maximum.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sos_core.distill.dataset import crop_batch, load_cases, read_manifest, select  # noqa: E402
from sos_core.explain.grad_cam import GradCam  # noqa: E402
from sos_core.models.model_file import load_model  # noqa: E402

SCALES = ((1.5, 64), (1.5, 80), (2.0, 96), (2.7, 128))


def logits_and_cams(model, x: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    cam = GradCam(model)
    lo, maps = [], []
    for i in range(0, len(x), batch):
        r = cam(torch.from_numpy(x[i : i + batch]).unsqueeze(1))
        lo.append(r.logits.float().numpy())
        maps.append(r.cam.numpy())
    return np.concatenate(lo), np.concatenate(maps)


def peak_boxes(cases, cams: np.ndarray, side: float) -> np.ndarray:
    """Native-pixel boxes of side `side` centred on each map's peak."""
    from sos_core.inference.zoom import peak_centres

    out = []
    centres = peak_centres(torch.from_numpy(cams)).tolist()
    for lb, (x, y) in zip(cases.letterboxes, centres, strict=True):
        cx, cy, _, _ = lb.box_to_image((x, y, x, y))
        out.append([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    return np.asarray(out, np.float32)


def probe(student_dir: Path, teacher_dir: Path, data: Path, split: str, modality: str) -> dict:
    student, s_card = load_model(student_dir)
    teacher, t_card = load_model(teacher_dir)
    manifest = read_manifest(data)
    train = select(manifest, "train", [modality])
    side = float(np.median([max(r.box[2] - r.box[0], r.box[3] - r.box[1]) for r in train]))
    cases = load_cases(select(manifest, split, [modality]), s_card.input_size[0])
    y = cases.labels
    res: dict[str, float] = {}
    full_logits, cams = logits_and_cams(student, cases.inputs)
    res["student full"] = float((full_logits.argmax(1) == y).mean())
    t_ctx = float(t_card.preprocessing.get("crop_context", 1.5))
    t_size = t_card.input_size[0]
    true_t = crop_batch(cases.natives, cases.native_boxes, t_size, context=t_ctx)
    res[f"teacher true {t_ctx}/{t_size}"] = float(
        (logits_and_cams(teacher, true_t)[0].argmax(1) == y).mean()
    )
    for ctx, size in SCALES:
        crops = crop_batch(cases.natives, cases.native_boxes, size, context=ctx)
        res[f"student true {ctx}/{size}"] = float(
            (logits_and_cams(student, crops)[0].argmax(1) == y).mean()
        )
    found = peak_boxes(cases, cams, side)
    found_t = crop_batch(cases.natives, found, t_size, context=t_ctx)
    t_logits = logits_and_cams(teacher, found_t)[0]
    res[f"teacher at peak {t_ctx}/{t_size}"] = float((t_logits.argmax(1) == y).mean())
    for ctx, size in SCALES:
        crops = crop_batch(cases.natives, found, size, context=ctx)
        lo = logits_and_cams(student, crops)[0]
        res[f"student at peak {ctx}/{size}"] = float((lo.argmax(1) == y).mean())
        both = torch.softmax(torch.from_numpy(lo), 1) + torch.softmax(
            torch.from_numpy(full_logits), 1
        )
        res[f"student full+peak {ctx}/{size}"] = float((both.argmax(1).numpy() == y).mean())
    return res


MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)


def mix_ablation(model_dir: Path, data: Path, split: str, modality: str) -> dict[str, float]:
    """A zoomed student's accuracy with its crop reading weighted 0 (full image alone) .. 1."""
    from sos_core.inference.zoom import ZoomSpec, combine, second_look

    model, card = load_model(model_dir)
    spec = ZoomSpec.from_preprocessing(card.preprocessing)
    if spec is None:
        raise SystemExit(f"{model_dir} has no second look in its card")
    cases = load_cases(select(read_manifest(data), split, [modality]), card.input_size[0])
    x = torch.from_numpy(cases.inputs).unsqueeze(1)
    full, crop = [], []
    cam = GradCam(model)
    for i in range(0, len(x), 16):
        r = cam(x[i : i + 16])
        full.append(r.logits.float())
        crop.append(second_look(model, x[i : i + 16], r.cam, spec).float())
    f, c = torch.cat(full), torch.cat(crop)
    y = torch.from_numpy(cases.labels)
    return {f"mix {m}": float((combine(f, c, m).argmax(1) == y).float().mean()) for m in MIXES}


def centring(model_dir: Path, teacher_dir: Path, data: Path, split: str, modality: str) -> dict:
    """A zoomed student's crop reading (and the teacher's) with the crop centred on the true
    box, on the student's map peak, or on the centroid of the map above half its maximum."""
    from sos_core.inference.zoom import (
        ZoomSpec,
        batchnorm_frozen,
        combine,
        peak_centres,
        zoom_crops,
    )

    model, card = load_model(model_dir)
    teacher, t_card = load_model(teacher_dir)
    spec = ZoomSpec.from_preprocessing(card.preprocessing)
    if spec is None:
        raise SystemExit(f"{model_dir} has no second look in its card")
    cases = load_cases(select(read_manifest(data), split, [modality]), card.input_size[0])
    y, b = cases.labels, cases.boxes
    x = torch.from_numpy(cases.inputs).unsqueeze(1)
    true = torch.from_numpy(np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1))
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    full, cams = logits_and_cams(model, cases.inputs)
    maps = torch.from_numpy(cams)
    weight = (maps - 0.5).clamp_min(0)
    ys, xs = torch.meshgrid(
        torch.arange(maps.shape[1]) + 0.5, torch.arange(maps.shape[2]) + 0.5, indexing="ij"
    )
    mass = weight.sum((1, 2))
    centroid = torch.stack([(weight * xs).sum((1, 2)) / mass, (weight * ys).sum((1, 2)) / mass], 1)
    out: dict[str, float] = {}
    for name, centres in (
        ("true box", true),
        ("map peak", peak_centres(maps)),
        ("centroid", centroid),
    ):
        offset = np.abs((centres - true).numpy()) / side[:, None]
        with torch.no_grad(), batchnorm_frozen(model):
            crop = model(zoom_crops(x, centres.float(), spec.crop_side(x.shape[-1]), spec.size))
        boxes = []
        pairs = zip(centres.numpy(), cases.letterboxes, cases.native_boxes, strict=True)
        for (cx, cy), lb, nb in pairs:
            px, py, _, _ = lb.box_to_image((cx, cy, cx, cy))
            s = max(nb[2] - nb[0], nb[3] - nb[1])
            boxes.append([px - s / 2, py - s / 2, px + s / 2, py + s / 2])
        t_crops = crop_batch(
            cases.natives,
            np.asarray(boxes, np.float32),
            t_card.input_size[0],
            context=float(t_card.preprocessing.get("crop_context", 1.5)),
        )
        t_logits = logits_and_cams(teacher, t_crops)[0]
        both = combine(torch.from_numpy(full), crop, spec.mix)
        out[f"{name}: offset / box side, median"] = float(np.median(offset))
        out[f"{name}: offset / box side, 90th percentile"] = float(np.percentile(offset, 90))
        out[f"{name}: student's crop reading"] = float((crop.argmax(1).numpy() == y).mean())
        out[f"{name}: student, both readings"] = float((both.argmax(1).numpy() == y).mean())
        out[f"{name}: teacher"] = float((t_logits.argmax(1) == y).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--pair", nargs=3, action="append", metavar=("NAME", "STUDENT", "TEACHER"))
    p.add_argument("--split", default="test")
    p.add_argument("--modalities", nargs="+", default=["ceph"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    p.add_argument(
        "--mixes", nargs=2, action="append", metavar=("NAME", "ZOOMED_STUDENT"), default=[]
    )
    p.add_argument(
        "--centring",
        nargs=3,
        action="append",
        metavar=("NAME", "ZOOMED_STUDENT", "TEACHER"),
        default=[],
    )
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    results = {}
    for name, folder, teacher in a.centring:
        for mod in a.modalities:
            r = centring(Path(folder), Path(teacher), a.data, a.split, mod)
            results[f"{name} {mod} centring"] = r
            print(f"## {name} {mod} ({a.split}): where the crop is centred")
            for k, v in r.items():
                print(f"  {k:52s} {v:.3f}" if "offset" in k else f"  {k:52s} {100 * v:5.1f} %")
            sys.stdout.flush()
    for name, folder in a.mixes:
        for mod in a.modalities:
            r = mix_ablation(Path(folder), a.data, a.split, mod)
            results[f"{name} {mod} mixes"] = r
            print(f"## {name} {mod} ({a.split}): crop reading's weight")
            for k, v in r.items():
                print(f"  {k:32s} {100 * v:5.1f} %")
            sys.stdout.flush()
    for name, s, t in a.pair or []:
        for mod in a.modalities:
            r = probe(Path(s), Path(t), a.data, a.split, mod)
            results[f"{name} {mod}"] = r
            print(f"## {name} {mod} ({a.split})")
            for k, v in r.items():
                print(f"  {k:32s} {100 * v:5.1f} %")
            sys.stdout.flush()
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
