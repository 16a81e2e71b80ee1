"""The Predictor on a real trained model: outputs, shared preprocessing, flags, CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sos_core.distill.dataset import load_cases, read_manifest
from sos_core.errors import ModelFormatError
from sos_core.imaging import open_study
from sos_core.inference.flags import Attention, attention_summary, image_problem, review_flags
from sos_core.inference.predictor import Predictor, cam_to_image
from sos_core.preprocess import image_from_study, letterbox, prepare_image


def test_prediction_fields(tiny_models: tuple[Path, Path]) -> None:
    data, model_dir = tiny_models
    predictor = Predictor(model_dir, device="cpu")
    rec = read_manifest(data)[0]
    p = predictor.predict(open_study(rec.path))
    assert 0 <= p.stage < 4
    assert p.stage_name == predictor.card.stage_names[p.stage]
    assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert p.stage == int(np.argmax(p.probabilities))
    assert p.cam is not None
    assert p.cam.shape == (64, 64)
    assert p.cam.dtype == np.float32
    assert float(p.cam.min()) >= 0.0
    assert float(p.cam.max()) <= 1.0
    assert p.model_version == f"{predictor.card.version}+{predictor.card.weights_sha256[:8]}"
    assert p.device == "cpu"
    assert p.slice_index is None
    assert len(p.flags) == len(p.messages)


def test_training_and_inference_see_the_same_tensor(tiny_models: tuple[Path, Path]) -> None:
    """The loader used by training and the Predictor's path give identical model inputs."""
    data, _ = tiny_models
    rec = read_manifest(data)[3]
    trained = load_cases([rec], 64).inputs[0]
    image, _ = image_from_study(open_study(rec.path))
    served, _ = prepare_image(image, 64)
    assert np.array_equal(trained, served)


def test_predictions_match_a_plain_forward(tiny_models: tuple[Path, Path]) -> None:
    data, model_dir = tiny_models
    predictor = Predictor(model_dir, device="cpu")
    rec = read_manifest(data)[5]
    image, _ = image_from_study(open_study(rec.path))
    x = torch.from_numpy(prepare_image(image, 64)[0])[None, None]
    with torch.no_grad():
        probs = torch.softmax(predictor.model(x) / predictor.card.temperature, dim=1)[0]
    got = predictor.predict_image(image).probabilities
    np.testing.assert_allclose(got, probs.numpy(), rtol=1e-5, atol=1e-6)


def test_blank_image_is_flagged_unsuitable(tiny_models: tuple[Path, Path]) -> None:
    predictor = Predictor(tiny_models[1], device="cpu")
    p = predictor.predict_image(np.zeros((80, 80), np.uint16))
    assert "unsuitable_image" in p.flags
    assert "blank" in p.messages[p.flags.index("unsuitable_image")]


def test_an_image_of_a_kind_the_model_never_learned_is_flagged_in_words(
    tiny_models: tuple[Path, Path],
) -> None:
    data, model_dir = tiny_models
    predictor = Predictor(model_dir, device="cpu")
    assert predictor.card.modalities == ("slice",)
    image, _ = image_from_study(open_study(read_manifest(data)[2].path))
    as_ceph = predictor.predict_image(image, kind="ceph")
    as_slice = predictor.predict_image(image, kind="slice")
    assert "unsuitable_image" in as_ceph.flags
    sentence = as_ceph.messages[as_ceph.flags.index("unsuitable_image")]
    assert "lateral cephalograms" in sentence
    assert "yourself" in sentence
    assert "unsuitable_image" not in as_slice.flags or "cephalogram" not in " ".join(
        as_slice.messages
    )
    assert as_ceph.probabilities == as_slice.probabilities  # still returned, only flagged


def test_image_kind_reads_the_study() -> None:
    from types import SimpleNamespace

    from sos_core.inference.study_inputs import image_kind

    assert image_kind(SimpleNamespace(kind="volume", modality="CT")) == "slice"
    assert image_kind(SimpleNamespace(kind="image", modality="CT", direction=None)) == "slice"
    assert image_kind(SimpleNamespace(kind="image", modality="DX")) == "ceph"
    assert image_kind(SimpleNamespace(kind="image", modality="CR")) == "ceph"
    assert image_kind(SimpleNamespace(kind="image", modality="PNG", sources=())) is None
    assert image_kind(SimpleNamespace(kind="image", modality="OT", sources=())) is None
    # a modality that can never be a view of the head is named, whatever the pixels look like
    assert image_kind(SimpleNamespace(kind="image", modality="MR", sources=())) == "MR"
    assert image_kind(SimpleNamespace(kind="volume", modality="US", sources=())) == "US"


AXIAL = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))  # columns: normal, rows, cols (LPS)
CORONAL = ((0.0, 1.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 0.0, -1.0))
SAGITTAL = ((0.97, 0.0, 0.0), (0.0, 1.0, 0.0), (0.24, 0.0, -1.0))  # tilted 14 degrees


@pytest.mark.parametrize(
    ("direction", "kind"),
    [(AXIAL, "CT-axial"), (CORONAL, "CT-coronal"), (SAGITTAL, "slice"), (None, "slice")],
)
def test_one_ct_image_is_read_by_its_plane(direction: tuple | None, kind: str) -> None:
    from types import SimpleNamespace

    from sos_core.inference.study_inputs import image_kind

    assert image_kind(SimpleNamespace(kind="image", modality="CT", direction=direction)) == kind


def test_one_axial_file_of_the_sample_cbct_series_is_refused_by_its_plane(
    tiny_models: tuple[Path, Path],
) -> None:
    from resources import resource_path
    from sos_core.inference.study_inputs import image_kind

    one_file = sorted((resource_path("samples") / "cbct" / "series_000").glob("*.dcm"))[0]
    study = open_study(one_file)
    assert image_kind(study) == "CT-axial"
    assert image_kind(open_study(one_file.parent)) == "slice"  # the whole series: a volume
    _, model_dir = tiny_models
    image, _ = image_from_study(study)
    p = Predictor(model_dir, device="cpu").predict_image(image, kind=image_kind(study))
    assert "unsuitable_image" in p.flags
    assert "one axial CT slice" in " ".join(p.messages)
    assert "open the whole series" in " ".join(p.messages)


def test_a_non_head_view_modality_is_unsuitable_by_its_header(
    tiny_models: tuple[Path, Path],
) -> None:
    data, model_dir = tiny_models
    predictor = Predictor(model_dir, device="cpu")
    image, _ = image_from_study(open_study(read_manifest(data)[0].path))  # a clean phantom
    as_us = predictor.predict_image(image, kind="US")
    assert "unsuitable_image" in as_us.flags
    assert "ultrasound image (DICOM modality US)" in " ".join(as_us.messages)
    assert "DICOM modality" not in " ".join(predictor.predict_image(image, kind=None).messages)


def test_image_kind_of_a_sample_png_comes_from_its_manifest() -> None:
    from resources import resource_path
    from sos_core.inference.study_inputs import image_kind

    samples = resource_path("samples")
    assert image_kind(open_study(samples / "cephs" / "case_000001.png")) == "ceph"
    assert image_kind(open_study(samples / "cephs" / "case_000001.dcm")) == "ceph"  # DX
    assert image_kind(open_study(samples / "slices" / "case_000001.png")) == "slice"


def test_an_image_coarser_than_the_training_data_is_flagged(
    tiny_models: tuple[Path, Path],
) -> None:
    data, model_dir = tiny_models
    predictor = Predictor(model_dir, device="cpu")
    assert predictor.card.training_data["input_mm_per_pixel"] == pytest.approx(1.0)
    image, _ = image_from_study(open_study(read_manifest(data)[2].path))
    coarse = predictor.predict_image(image, detail_mm=2.0)
    fine = predictor.predict_image(image, detail_mm=1.2)
    assert "too coarse" in " ".join(coarse.messages)
    assert "unsuitable_image" in coarse.flags
    assert "too coarse" not in " ".join(fine.messages)


def test_input_detail_is_the_coarser_of_pixel_size_and_letterbox_shrink() -> None:
    from types import SimpleNamespace

    from sos_core.inference.study_inputs import plane_spacing
    from sos_core.preprocess import input_detail_mm

    assert input_detail_mm((0.9, 0.9), (256, 256), 256) == pytest.approx(0.9)
    assert input_detail_mm((1.6, 1.6), (128, 128), 256) == pytest.approx(1.6)  # upsampled
    assert input_detail_mm((0.1, 0.1), (2048, 1536), 256) == pytest.approx(0.8)  # shrunk
    assert input_detail_mm(None, (256, 256), 256) is None
    volume = SimpleNamespace(kind="volume", spacing=(0.5, 0.3, 0.4))
    assert plane_spacing(volume) == (0.5, 0.3)  # sagittal plane: slices x rows
    assert plane_spacing(SimpleNamespace(kind="image", spacing=(0.2, 0.25))) == (0.2, 0.25)
    assert plane_spacing(SimpleNamespace(kind="image", spacing=None)) is None


def test_teacher_is_refused_as_predictor(tiny_models: tuple[Path, Path]) -> None:
    teacher_dir = tiny_models[1].parents[1] / "teacher" / "model"
    with pytest.raises(ModelFormatError, match="teacher"):
        Predictor(teacher_dir, device="cpu")


def test_cam_maps_back_onto_the_image_grid() -> None:
    img = np.zeros((50, 100), np.float32)
    _, lb = letterbox(img, 64)
    cam_in = np.zeros((64, 64), np.float32)
    cam_in[16:48, 32:64] = 1.0  # right half of the letterboxed image area
    out = cam_to_image(cam_in, lb, img.shape)
    assert out.shape == (50, 100)
    assert out[:, 60:].mean() > 0.9
    assert out[:, :40].mean() < 0.1


def test_attention_summary_measures_compactness_and_region() -> None:
    from sos_core.inference.review_stats import ReviewStats

    stats = ReviewStats(
        low_confidence=0.6,
        between_margin=0.2,
        min_region_mass=0.35,
        min_compactness=0.45,
        region_center=np.array([0.25, 0.25]),
        region_spread=np.array([0.02, 0.02]),
        box_size=np.array([0.1, 0.1]),
        feature_means=np.zeros((4, 2)),
        feature_var=np.ones(2),
        ood_threshold=1.0,
        ood_soft_threshold=0.5,
    )
    on = np.zeros((64, 64), np.float32)
    on[14:18, 14:18] = 1.0
    a = attention_summary(on, stats)
    assert a.region_mass == pytest.approx(1.0)
    assert a.compactness == pytest.approx(1.0)
    off = np.zeros((64, 64), np.float32)
    off[50:54, 50:54] = 1.0
    off[5:9, 50:54] = 1.0
    b = attention_summary(off, stats)
    assert b.region_mass == 0.0
    assert b.compactness == pytest.approx(0.5)
    flags, _ = review_flags(
        np.array([0.9, 0.05, 0.03, 0.02]), b, 0.1, None, stats, ("a", "b", "c", "d")
    )
    assert flags == ("attention_off_target",)
    clean, _ = review_flags(
        np.array([0.9, 0.05, 0.03, 0.02]), a, 0.1, None, stats, ("a", "b", "c", "d")
    )
    assert clean == ()
    # Unsuitable: features beyond the strict threshold, or beyond the soft one with the
    # attention off target; neither weak sign alone.
    probs, names = np.array([0.9, 0.05, 0.03, 0.02]), ("a", "b", "c", "d")
    assert review_flags(probs, a, 1.2, None, stats, names)[0] == ("unsuitable_image",)
    assert review_flags(probs, a, 0.7, None, stats, names)[0] == ()
    assert review_flags(probs, b, 0.7, None, stats, names)[0] == (
        "attention_off_target",
        "unsuitable_image",
    )
    assert review_flags(probs, b, 0.4, None, stats, names)[0] == ("attention_off_target",)


def test_between_stages_and_low_confidence_fire_only_when_due() -> None:
    att = Attention(1.0, 1.0, (0.0, 0.0))
    names = ("Open", "Partially fused", "Mostly fused", "Completely fused")
    flags, msgs = review_flags(np.array([0.05, 0.48, 0.42, 0.05]), att, None, None, None, names)
    assert flags == ("low_confidence", "between_stages")
    assert "between stages 1 and 2" in msgs[1]
    far, _ = review_flags(np.array([0.48, 0.02, 0.45, 0.05]), att, None, None, None, names)
    assert "between_stages" not in far  # not adjacent
    sure, _ = review_flags(np.array([0.02, 0.9, 0.06, 0.02]), att, None, None, None, names)
    assert sure == ()


@pytest.mark.parametrize(("shape", "fill"), [((10, 400), 0.5), ((20, 20), 0.5), ((100, 100), None)])
def test_image_problems(shape: tuple[int, int], fill: float | None) -> None:
    img = np.full(shape, fill, np.float32) if fill is not None else np.zeros(shape, np.float32)
    if fill is not None:
        img[::2] = 0.0
    assert image_problem(img) is not None


def test_noise_image_is_not_called_blank() -> None:
    rng = np.random.default_rng(0)
    assert image_problem(rng.random((128, 128)).astype(np.float32)) is None


def _sos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sos_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_cli_predict_json_and_exit_codes(
    tiny_models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, model_dir = tiny_models
    good = read_manifest(data)[0].path
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (96, 96), np.uint8)).save(noise)
    truncated = tmp_path / "cut.dcm"
    import pydicom.data

    src = Path(pydicom.data.get_testdata_file("CT_small.dcm")).read_bytes()
    truncated.write_bytes(src[: len(src) // 2])
    rtplan = pydicom.data.get_testdata_file("rtplan.dcm")
    overlay = tmp_path / "overlay.png"
    proc = _sos(
        "predict",
        "--model",
        str(model_dir),
        "--json",
        "--overlay",
        str(overlay),
        str(good),
        str(noise),
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    for row in rows:
        assert {
            "source",
            "stage",
            "stage_name",
            "probabilities",
            "flags",
            "messages",
            "model_version",
            "device",
            "slice",
        } <= set(row)
        assert len(row["probabilities"]) == 4
    assert (tmp_path / "overlay-1.png").is_file()
    assert (tmp_path / "overlay-2.png").is_file()
    from sos_core.cli import main

    no_images = tmp_path / "no-images"  # a folder with nothing to stage
    no_images.mkdir()
    (no_images / "notes.txt").write_text("not an image")
    for bad in (str(tmp_path / "missing.png"), str(truncated), rtplan, str(no_images)):
        capsys.readouterr()
        assert main(["predict", "--model", str(model_dir), bad]) == 2, bad
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert err.startswith("sos: ")
        assert len(err.strip().splitlines()) == 1


def test_cli_info_names_the_model(tiny_models: tuple[Path, Path]) -> None:
    proc = _sos("info", "--json", "--model", str(tiny_models[1]))
    assert proc.returncode == 0
    info = json.loads(proc.stdout)
    assert info["model"]["version"] == "test-student"
    assert info["device"] == "cpu"


def test_attention_thresholds_are_fitted_below_clean_validation_maps() -> None:
    from sos_core.inference.flags import attention_summary
    from sos_core.inference.review_stats import ReviewStats, attention_thresholds

    rng = np.random.default_rng(0)
    review = {
        "region_center": [0.5, 0.5],
        "region_spread": [0.02, 0.02],
        "box_size": [0.1, 0.1],
        "feature_means": [[0.0], [1.0]],
        "feature_var": [1.0],
        "ood_threshold": 3.0,
    }
    maps = []
    for _ in range(40):  # a peak on the region over a faint wide background, like the student's
        m = rng.uniform(0, 0.1, (64, 64)).astype(np.float32)
        m[28:36, 28:36] = 1.0
        maps.append(m)
    got = attention_thresholds(np.stack(maps), review)
    stats = ReviewStats.from_card({**review, **got})
    assert stats is not None
    clean = [attention_summary(m, stats) for m in maps]
    assert all(a.region_mass >= got["min_region_mass"] for a in clean)
    assert all(a.compactness >= got["min_compactness"] for a in clean)
    elsewhere = rng.uniform(0, 0.1, (64, 64)).astype(np.float32)
    elsewhere[2:10, 2:10] = 1.0  # the same peak in a corner
    assert attention_summary(elsewhere, stats).region_mass < got["min_region_mass"]


def test_a_folder_of_images_is_predicted_image_by_image(tmp_path: Path) -> None:
    from sos_core.commands.predict import expand_inputs

    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(images / name)
    series = tmp_path / "series"
    series.mkdir()
    (series / "1.dcm").write_bytes(b"")
    (series / "2.dcm").write_bytes(b"")
    single = images / "a.png"
    got = expand_inputs([str(images), str(series), str(single)])
    assert got == [str(images / "a.png"), str(images / "b.png"), str(series), str(single)]


NON_SKULL = (  # pydicom's own test files: abdomen CT, MR, colour, palette, dose grid, lossy J2K
    "CT_small.dcm",
    "MR_small.dcm",
    "liver_1frame.dcm",
    "examples_palette.dcm",
    "examples_ybr_color.dcm",
    "JPEG2000.dcm",
    "rtdose_1frame.dcm",
    "693_J2KI.dcm",
)


@pytest.mark.parametrize("name", NON_SKULL)
def test_the_shipped_student_flags_pydicoms_non_skull_images_unsuitable(name: str) -> None:
    import pydicom

    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    p = Predictor(device="cpu").predict(open_study(path))  # the embedded default model
    assert "unsuitable_image" in p.flags, (name, p.flags, p.extra)
    assert p.messages[p.flags.index("unsuitable_image")].endswith(".")


def test_neighbouring_slices_are_averaged_and_their_agreement_reported() -> None:
    from resources import resource_path

    study = open_study(resource_path("samples/cbct/series_000"))
    predictor = Predictor(device="cpu")
    centre = predictor.predict(study).slice_index
    assert centre is not None
    pooled = predictor.predict(study, neighbours=2)
    assert pooled.slice_index == centre
    assert pooled.extra["slices"] == list(range(centre - 2, centre + 3))
    singles = [predictor.predict(study, slice=i) for i in pooled.extra["slices"]]
    expected = np.mean([s.probabilities for s in singles], axis=0)
    np.testing.assert_allclose(pooled.probabilities, expected, atol=1e-6)
    assert pooled.stage == int(np.argmax(expected))
    assert pooled.extra["slice_stages"] == [s.stage for s in singles]
    agreeing = sum(s.stage == pooled.stage for s in singles)
    assert pooled.extra["agreement"] == pytest.approx(agreeing / 5)
    # A 2-D image has no neighbouring slices: the option changes nothing.
    png = open_study(resource_path("samples/slices/case_000000.png"))
    plain, asked = predictor.predict(png), predictor.predict(png, neighbours=2)
    assert asked.probabilities == plain.probabilities
    assert "agreement" not in asked.extra


def test_cli_reports_neighbouring_slices(capsys: pytest.CaptureFixture[str]) -> None:
    from resources import resource_path
    from sos_core.cli import main

    series = str(resource_path("samples/cbct/series_000"))
    assert main(["predict", "--json", "--neighbours", "1", series]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["slices"] == [row["slice"] - 1, row["slice"], row["slice"] + 1]
    assert len(row["slice_stages"]) == 3
    assert row["agreement"] == pytest.approx(row["slice_stages"].count(row["stage"]) / 3, abs=1e-4)
    assert main(["predict", "--neighbours", "-1", series]) == 2
    assert "0 or more" in capsys.readouterr().err
    # The text counts slices from 1, as the app does, and names the index --slice takes.
    i = row["slice"]
    assert main(["predict", "--neighbours", "1", series]) == 0
    text = capsys.readouterr().out
    assert f"on sagittal slice {i + 1} (index {i}), averaged over slices {i}-{i + 2}" in text
    assert main(["predict", "--slice", str(i), series]) == 0
    assert f"on sagittal slice {i + 1} (index {i})" in capsys.readouterr().out


def test_feature_statistics_keep_the_modalities_apart() -> None:
    """One mean per stage and modality: an image between a model's two modality clouds is far
    from both (one mean per stage would sit right on it)."""
    from sos_core.inference.review_stats import ReviewStats, fit_review_stats

    rng = np.random.default_rng(0)
    n = 200
    labels = np.tile(np.arange(4), n // 4)
    kinds = np.repeat(["slice", "ceph"], n // 2)
    centre = np.where(kinds == "slice", -5.0, 5.0)[:, None]
    pooled = centre + rng.normal(0, 1, (n, 8))
    boxes = np.tile([[10.0, 10.0, 20.0, 20.0]], (n, 1))
    split = fit_review_stats(pooled, labels, pooled[:40], boxes, 64, 4, kinds)
    mixed = fit_review_stats(pooled, labels, pooled[:40], boxes, 64, 4)
    assert len(split["feature_means"]) == 8
    assert len(mixed["feature_means"]) == 4
    between = np.zeros(8)
    stats = ReviewStats.from_card(split)
    assert stats.ood_score(between) > stats.ood_threshold
    assert stats.ood_score(pooled[1]) < split["ood_val_p90"] * 1.5
    assert ReviewStats.from_card(mixed).ood_score(between) < mixed["ood_threshold"]
    # Each mean knows its modality, so an image's nearest mean says what it looks like.
    assert split["feature_modalities"] == ["ceph"] * 4 + ["slice"] * 4
    assert [stats.nearest_modality(p) for p in pooled[[0, 1, -2, -1]]] == [
        "slice",
        "slice",
        "ceph",
        "ceph",
    ]
    assert "feature_modalities" not in mixed
    assert ReviewStats.from_card(mixed).nearest_modality(pooled[0]) is None


@pytest.mark.parametrize(("nearest", "size"), [("ceph", 96), ("slice", 64), (None, 64)])
def test_an_image_of_unknown_kind_is_read_at_the_size_of_the_kind_it_looks_like(
    tiny_models: tuple[Path, Path], tmp_path: Path, nearest: str | None, size: int
) -> None:
    from sos_core.models.model_file import load_model, save_model

    data, model_dir = tiny_models
    model, card = load_model(model_dir)
    image, _ = image_from_study(open_study(read_manifest(data)[5].path))
    with torch.no_grad():
        feats, _ = model.eval().forward_with_features(
            torch.from_numpy(prepare_image(image, 64)[0])[None, None]
        )
    pooled = feats.mean(dim=(2, 3))[0].numpy().astype(float)
    # Two feature means, one at this image's own features: it looks like that row's modality.
    review = dict(card.to_dict()["metrics"]["review"])
    review.update(feature_means=[pooled.tolist(), (pooled + 100).tolist()])
    review["feature_var"] = np.ones_like(pooled).tolist()
    if nearest is not None:  # None: a card from before the rows' modalities were recorded
        review["feature_modalities"] = [nearest, "slice" if nearest == "ceph" else "ceph"]
    else:
        review.pop("feature_modalities", None)
    described = card.replace(
        modalities=("slice", "ceph"),
        modality_input_sizes={"ceph": (96, 96)},
        metrics={**card.to_dict()["metrics"], "review": review},
    )
    save_model(tmp_path / "m", model, described)
    p = Predictor(tmp_path / "m", device="cpu").predict_image(image)  # a PNG: its kind is unknown
    assert p.extra.get("read_as") == nearest
    x = torch.from_numpy(prepare_image(image, size)[0])[None, None]
    with torch.no_grad():
        expected = torch.softmax(model(x) / card.temperature, dim=1)[0].numpy()
    np.testing.assert_allclose(p.probabilities, expected, rtol=1e-5, atol=1e-6)
