"""The staging problem is the real one: the stage is in the SOS crop and nowhere else."""

from __future__ import annotations

from sos_core.phantom.hardness import logistic_eval, make_data


def test_stage_is_readable_in_the_crop_but_not_outside_it() -> None:
    # Tiny sizes: the full image at 3.6 mm, the crop rendered directly at 1 mm around the band.
    kw = {"size": 64, "spacing": 3.6, "crop_px": 20, "full_px": 32, "crop_spacing": 1.0}
    train = make_data(160, seed=1, **kw)
    test = make_data(80, seed=2, **kw)
    crop_acc = logistic_eval(train.crops, train.stages, test.crops, test.stages)
    blank_acc = logistic_eval(train.blanked, train.stages, test.blanked, test.stages)
    assert crop_acc >= 0.7, f"crop accuracy {crop_acc:.2f}"
    assert blank_acc <= 0.45, f"accuracy with the SOS blanked {blank_acc:.2f} (chance 0.25)"
