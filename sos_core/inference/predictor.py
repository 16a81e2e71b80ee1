"""`Predictor`: a model folder, a device, and `predict(study)` → `Prediction`.

One forward pass gives the logits, the pooled features (for the unsuitable-image check) and the
Grad-CAM of the predicted stage (closed form for the GAP + linear head, DESIGN.md). A student
whose card has a zoom adds a second, small pass on a crop around that map's peak
(`sos_core.inference.zoom`); its logits join the first's. Inputs are
prepared by `sos_core.preprocess`, the very function training uses.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from sos_core.device import choose_device, configure_cpu_threads
from sos_core.errors import ModelFormatError
from sos_core.explain.grad_cam import class_activation_map, normalise_maps
from sos_core.inference.flags import attention_summary, image_problem, review_flags
from sos_core.inference.prediction import Prediction
from sos_core.inference.review_stats import ReviewStats
from sos_core.inference.study_inputs import (
    MODALITY_NAMES,
    NON_HEAD_VIEW_MODALITIES,
    WRONG_PLANE_SLICES,
    StudyInputs,
    study_inputs,
)
from sos_core.inference.zoom import ZoomSpec, combine, second_look
from sos_core.models.inference_form import fold_batch_norm
from sos_core.models.model_file import load_model
from sos_core.preprocess import Letterbox, normalise_intensity, prepare_image

if TYPE_CHECKING:
    from sos_core.imaging.study import Study

logger = logging.getLogger(__name__)

MODEL_ENV = "SOS_MODEL_DIR"


def default_model_dir() -> Path:
    """$SOS_MODEL_DIR, else the embedded student in resources/models/student."""
    from resources import resource_path

    env = os.environ.get(MODEL_ENV)
    return Path(env) if env else resource_path("models/student")


class Predictor:
    """Stage predictions with Grad-CAM and review flags. Thread-safe (one call at a time)."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str | None = None,
        *,
        threads: int | None = None,
        warm_up: bool = True,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.device = choose_device(device)
        if self.device.type == "cpu":
            configure_cpu_threads(threads)
        self.model, self.card = load_model(self.model_dir, device=self.device)
        if self.card.preprocessing.get("input") == "crop":
            raise ModelFormatError(
                f"{self.model_dir.name} is a crop teacher; predictions need a full-image student.",
                path=self.model_dir,
            )
        fold_batch_norm(self.model)  # same outputs, less time (inference_form)
        # Channels-last suits oneDNN's depthwise convolutions and cuDNN alike: with the fold,
        # 0.59x the student's NCHW forward time on this machine's CPU (benchmarks/cpu_layout.py).
        self._channels_last = self.device.type in ("cpu", "cuda")
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.size = int(self.card.input_size[0])  # for images of a modality the card does not size
        self.stats = ReviewStats.from_card(self.card.metrics.get("review"))
        # A student trained with the second look reads each image twice (inference.zoom).
        self.zoom = ZoomSpec.from_preprocessing(self.card.preprocessing)
        self._lock = threading.Lock()
        if warm_up:  # every input size, so that no first image of a modality pays the set-up
            for size in self.card.input_sizes():
                self._forward(np.zeros((size, size), np.float32))

    @property
    def version(self) -> str:
        """The card's version with the weights' SHA-256 prefix, as shown with every prediction."""
        return f"{self.card.version}+{self.card.weights_sha256[:8]}"

    def _forward(
        self, image01: np.ndarray, stage: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(calibrated probabilities, pooled features, [0,1] map at input size) for one input;
        the map is of `stage`, else of the most probable stage."""
        x = torch.from_numpy(np.ascontiguousarray(image01))[None, None].to(self.device)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._lock, torch.inference_mode():
            feats, logits = self.model.forward_with_features(x)
            if self.zoom is not None:  # the second look centres on the full reading's map
                first = self._input_map(feats, logits.argmax(dim=1), x)
                crop_logits = second_look(self.model, x, first, self.zoom)
                logits = combine(logits, crop_logits, self.zoom.mix)
            probs = torch.softmax(logits.float() / self.card.temperature, dim=1)
            chosen = (
                probs.argmax(dim=1) if stage is None else torch.tensor([stage], device=x.device)
            )
            cam = self._input_map(feats, chosen, x)
            pooled = feats.float().mean(dim=(2, 3))
        return probs[0].cpu().numpy(), pooled[0].cpu().numpy(), cam[0].cpu().numpy()

    def _input_map(
        self, feats: torch.Tensor, classes: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        """[0, 1] Grad-CAM of `classes` at the input's resolution."""
        cam = class_activation_map(feats, self.model.head_weight, classes).float()
        cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
        return normalise_maps(cam[:, 0])

    def predict(
        self,
        study: Study,
        slice: int | None = None,  # noqa: A002
        *,
        neighbours: int = 0,
    ) -> Prediction:
        """Predict the stage of a study (a volume's automatic mid-sagittal slice by default).

        For a volume, `neighbours` > 0 also stages that many sagittal slices on either side and
        averages the probabilities of all of them; the map, box and flags are the chosen
        slice's for the averaged stage, and `extra` holds "slices", "slice_stages" and
        "agreement" (the share of slices whose own stage is the averaged one).
        """
        return self.predict_inputs(
            study_inputs(study, slice, neighbours=neighbours, input_size=self.card.input_size_for)
        )

    def predict_inputs(self, inputs: StudyInputs) -> Prediction:
        """`predict` for a study already reduced by `study_inputs` (maybe in another process)."""
        if not inputs.neighbour_inputs:
            return self.predict_image(
                inputs.image,
                slice_index=inputs.slice_index,
                kind=inputs.kind,
                detail_mm=inputs.detail_mm,
            )
        per_slice = [self._forward(x)[0] for x in inputs.neighbour_inputs]
        mean = np.mean(per_slice, axis=0)
        prediction = self.predict_image(
            inputs.image,
            slice_index=inputs.slice_index,
            kind=inputs.kind,
            detail_mm=inputs.detail_mm,
            probabilities=mean,
        )
        stages = [int(np.argmax(p)) for p in per_slice]
        prediction.extra.update(
            slices=list(inputs.neighbour_slices),
            slice_stages=stages,
            agreement=sum(s == prediction.stage for s in stages) / len(stages),
        )
        return prediction

    def predict_image(
        self,
        pixels: np.ndarray,
        *,
        slice_index: int | None = None,
        kind: str | None = None,
        detail_mm: float | None = None,
        probabilities: np.ndarray | None = None,
    ) -> Prediction:
        """Predict the stage of one 2-D image in modality units.

        `kind` ("slice" or "ceph", None when unknown) is checked against the modalities the
        model was trained on, and `detail_mm` (mm of anatomy per model-input pixel, see
        `input_detail_mm`) against the detail it was trained on; a mismatch flags the image
        as unsuitable, in words. `probabilities` (e.g. averaged over neighbouring slices)
        replace this image's own for the stage, the map's class and the flags.

        A model that reads some modality at another size reads an image of unknown kind (a PNG
        outside a dataset) as the modality its features are nearest to, and says so in
        `extra["read_as"]`; the file's own kind (None) is what the checks see.
        """
        start = time.perf_counter()
        size = self.card.input_size_for(kind)
        inp, lb = prepare_image(pixels, size)
        stage = None if probabilities is None else int(np.argmax(probabilities))
        probs, pooled, cam_in = self._forward(inp, stage)
        read_as = self._kind_from_features(pooled) if kind is None else None
        if read_as is not None and self.card.input_size_for(read_as) != size:
            inp, lb = prepare_image(pixels, self.card.input_size_for(read_as))
            probs, pooled, cam_in = self._forward(inp, stage)
        if probabilities is not None:
            probs = np.asarray(probabilities, dtype=probs.dtype)
        attention = attention_summary(cam_in, self.stats)
        ood = self.stats.ood_score(pooled) if self.stats is not None else None
        flags, messages = review_flags(
            probs,
            attention,
            ood,
            image_problem(normalise_intensity(pixels))
            or self._kind_problem(kind)
            or self._detail_problem(detail_mm),
            self.stats,
            self.card.stage_names,
        )
        stage = int(np.argmax(probs))
        return Prediction(
            stage=stage,
            stage_name=self.card.stage_names[stage],
            probabilities=tuple(float(p) for p in probs),
            model_version=self.version,
            device=self.device.type,
            cam=cam_to_image(cam_in, lb, pixels.shape),
            box=self._suggest_box(attention.peak, lb),
            slice_index=slice_index,
            flags=flags,
            messages=messages,
            seconds=time.perf_counter() - start,
            extra={
                "ood_score": ood,
                "region_mass": attention.region_mass,
                "compactness": attention.compactness,
                **({"read_as": read_as} if read_as is not None else {}),
            },
        )

    def _kind_from_features(self, pooled: np.ndarray) -> str | None:
        """For a model that reads modalities at different sizes: the modality an image of
        unknown kind looks like (its nearest stage-and-modality feature mean), else None."""
        if self.stats is None or len(self.card.input_sizes()) == 1:
            return None
        return self.stats.nearest_modality(pooled)

    def _kind_problem(self, kind: str | None) -> str | None:
        if kind in WRONG_PLANE_SLICES:
            return (
                f"The file is {WRONG_PLANE_SLICES[kind]}, not a mid-sagittal view; open the "
                "whole series (its folder) so that the mid-sagittal slice can be made from it."
            )
        if kind in NON_HEAD_VIEW_MODALITIES:
            return (
                f"The file is {NON_HEAD_VIEW_MODALITIES[kind]} (DICOM modality {kind}), not a "
                "CBCT slice or a cephalogram of the head; it cannot be staged."
            )
        trained = self.card.modalities
        if kind is None or not trained or kind in trained:
            return None
        learned = " and ".join(MODALITY_NAMES.get(m, m) for m in trained)
        return (
            f"This model learned {learned} only, not {MODALITY_NAMES.get(kind, kind)}; "
            "stage this image yourself."
        )

    def _detail_problem(self, detail_mm: float | None) -> str | None:
        trained = self.card.training_data.get("input_mm_per_pixel")
        if detail_mm is None or not trained or detail_mm <= 1.5 * float(trained):
            return None
        return (
            f"The image is too coarse ({detail_mm:.1f} mm per pixel at the model's input; it "
            f"learned from {float(trained):.1f} mm), so the synchondrosis gap may not show; "
            "stage this image yourself."
        )

    def _suggest_box(
        self, peak: tuple[float, float], lb: Letterbox
    ) -> tuple[float, float, float, float]:
        """A box of the typical SOS size, centred on the map's peak, in image pixels."""
        size = lb.size
        w, h = (self.stats.box_size * size) if self.stats is not None else (0.12 * size,) * 2
        x, y = peak
        return tuple(
            float(v) for v in lb.box_to_image((x - w / 2, y - h / 2, x + w / 2, y + h / 2))
        )


def cam_to_image(cam_in: np.ndarray, lb: Letterbox, shape: tuple[int, ...]) -> np.ndarray:
    """Cut the letterbox padding off an input-size map and resize it to the image's pixels."""
    h, w = shape[:2]
    y0, x0 = round(lb.pad_y), round(lb.pad_x)
    y1, x1 = y0 + max(1, round(h * lb.scale)), x0 + max(1, round(w * lb.scale))
    inner = cam_in[y0:y1, x0:x1]
    out = cv2.resize(inner, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
