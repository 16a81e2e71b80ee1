"""Reference statistics that let a prediction say when it needs an expert's eye.

Fitted once, at the end of student training, from the training and validation cases, and
stored in the model card's `review` section (plain JSON, no pickle):

- where the SOS lies in model-input coordinates (centre mean / spread, typical box size), so a
  map whose mass is elsewhere is "attention off target" and a suggested box has a sensible size;
- the distribution of the pooled features of in-distribution images (one mean per stage and
  modality, a shared diagonal variance), so an image far from all of them is "unsuitable" (Lee
  et al. 2018, Mahalanobis OOD score, diagonal form). Per modality because a model that reads
  slices and cephalograms has two clouds per stage: one mean between them made the variance so
  wide that a colour photograph or an abdominal CT sat inside it;
- thresholds for low confidence and "between stages".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULTS = {
    "low_confidence": 0.6,  # top calibrated probability below this → low_confidence
    "between_margin": 0.2,  # two adjacent best stages closer than this → between_stages
    "min_region_mass": 0.35,  # CAM mass share inside the expected SOS region
    "min_compactness": 0.45,  # CAM mass share in the peak's connected component
}


@dataclass(frozen=True, slots=True)
class ReviewStats:
    """The card's `review` section as arrays. Coordinates are fractions of the model input."""

    low_confidence: float
    between_margin: float
    min_region_mass: float
    min_compactness: float
    region_center: np.ndarray  # (2,) x, y
    region_spread: np.ndarray  # (2,) sd of the centre, x, y
    box_size: np.ndarray  # (2,) median w, h
    feature_means: np.ndarray  # (G, K): one row per stage (and modality) seen in training
    feature_var: np.ndarray  # (K,)
    ood_threshold: float
    ood_soft_threshold: float  # with attention off target: the 90th percentile of validation
    # Per row of feature_means, the modality its images were (cards from before: empty).
    feature_modalities: tuple[str, ...] = ()

    @classmethod
    def from_card(cls, review: Any) -> ReviewStats | None:
        if not review or "feature_means" not in review:
            return None
        return cls(
            low_confidence=float(review.get("low_confidence", DEFAULTS["low_confidence"])),
            between_margin=float(review.get("between_margin", DEFAULTS["between_margin"])),
            min_region_mass=float(review.get("min_region_mass", DEFAULTS["min_region_mass"])),
            min_compactness=float(review.get("min_compactness", DEFAULTS["min_compactness"])),
            region_center=np.asarray(review["region_center"], np.float64),
            region_spread=np.asarray(review["region_spread"], np.float64),
            box_size=np.asarray(review["box_size"], np.float64),
            feature_means=np.asarray(review["feature_means"], np.float64),
            feature_var=np.asarray(review["feature_var"], np.float64),
            ood_threshold=float(review["ood_threshold"]),
            # Cards from before it existed: the strict threshold alone, as they were fitted.
            ood_soft_threshold=float(review.get("ood_val_p90") or review["ood_threshold"]),
            feature_modalities=tuple(str(m) for m in review.get("feature_modalities") or ()),
        )

    def _distances(self, pooled: np.ndarray) -> np.ndarray:
        return ((pooled[None, :] - self.feature_means) ** 2 / self.feature_var).mean(axis=1)

    def ood_score(self, pooled: np.ndarray) -> float:
        """Distance of one pooled feature vector to the nearest class mean (diagonal form)."""
        return float(np.sqrt(self._distances(pooled).min()))

    def nearest_modality(self, pooled: np.ndarray) -> str | None:
        """The modality of the (stage, modality) mean nearest to one pooled feature vector:
        what the image looks like to the model when its file does not say (None: the card
        does not record the rows' modalities)."""
        if len(self.feature_modalities) != len(self.feature_means):
            return None
        return self.feature_modalities[int(np.argmin(self._distances(pooled)))]


def fit_review_stats(
    pooled_train: np.ndarray,
    labels_train: np.ndarray,
    pooled_val: np.ndarray,
    boxes_input: np.ndarray,
    input_size: int,
    num_classes: int,
    modalities_train: np.ndarray | None = None,
) -> dict[str, Any]:
    """The card's `review` section from pooled features (N x K) and true boxes (input px).

    `modalities_train` (N strings) gives each (stage, modality) pair its own mean."""
    groups = np.asarray(labels_train, np.int64)
    kinds: list[str] = []
    if modalities_train is not None:
        kinds = sorted(set(map(str, modalities_train)))
        index = np.array([kinds.index(str(m)) for m in modalities_train], np.int64)
        groups = groups + num_classes * index
    present, rows = np.unique(groups, return_inverse=True)
    means = np.stack([pooled_train[rows == i].mean(axis=0) for i in range(len(present))])
    resid = pooled_train - means[rows]
    var = resid.var(axis=0) + 1e-6 * (pooled_train.var(axis=0).mean() + 1e-12)
    stats = ReviewStats(
        **{k: float(v) for k, v in DEFAULTS.items()},
        region_center=np.zeros(2),
        region_spread=np.ones(2),
        box_size=np.ones(2),
        feature_means=means,
        feature_var=var,
        ood_threshold=0.0,
        ood_soft_threshold=0.0,
    )
    val_scores = np.array([stats.ood_score(p) for p in pooled_val])
    # Generous: the 99.5th percentile of clean validation images, with 25 % headroom.
    threshold = float(np.percentile(val_scores, 99.5) * 1.25) if len(val_scores) else 1e9
    b = boxes_input / input_size
    centres = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)
    sizes = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
    return {
        **DEFAULTS,
        "region_center": centres.mean(axis=0).round(5).tolist(),
        "region_spread": np.maximum(centres.std(axis=0), 0.02).round(5).tolist(),
        "box_size": np.median(sizes, axis=0).round(5).tolist(),
        "feature_means": means.astype(np.float32).round(6).tolist(),
        **({"feature_modalities": [kinds[g // num_classes] for g in present]} if kinds else {}),
        "feature_var": var.astype(np.float32).tolist(),
        "ood_threshold": round(threshold, 5),
        "ood_val_p50": round(float(np.median(val_scores)), 5) if len(val_scores) else None,
        "ood_val_p90": round(float(np.percentile(val_scores, 90)), 5) if len(val_scores) else None,
    }


def attention_thresholds(maps: Sequence[np.ndarray], review: dict[str, Any]) -> dict[str, float]:
    """min_region_mass / min_compactness from the maps of clean validation images.

    `maps`: input-resolution maps in [0, 1] (the Predictor's), of one size or several. Fixed
    thresholds suited one student and flagged every image of the next (its maps have a faint
    wide background, so the peak component holds little of the total mass): each threshold is the
    5th percentile of the validation values with 20 % headroom, so about 1 clean image in 25
    or fewer is flagged and a map clearly worse than any seen in validation always is.
    """
    from sos_core.inference.flags import attention_summary

    if len(maps) == 0:
        return {k: DEFAULTS[k] for k in ("min_region_mass", "min_compactness")}
    stats = ReviewStats.from_card({**review, "min_region_mass": 0.0, "min_compactness": 0.0})
    summaries = [attention_summary(m, stats) for m in maps]
    mass = np.array([a.region_mass for a in summaries])
    compact = np.array([a.compactness for a in summaries])
    return {
        "min_region_mass": round(float(np.percentile(mass, 5) * 0.8), 5),
        "min_compactness": round(float(np.percentile(compact, 5) * 0.8), 5),
    }
