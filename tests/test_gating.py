"""ssseg.gate: the gate read from model.json, chosen and applied (numpy and torch); and its torch-free analysis:
per-class thresholds for a precision target, coverage at a kept-pixel accuracy, risk-coverage, on hand-made
histograms whose answers are known exactly."""

import math

import numpy as np
import pytest

from ssseg.gate import BINS, coverage_at, per_class_thresholds, risk_coverage, summarize_source, threshold_of

NAMES = ("road", "car", "bike")


def joint_of(cells: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(bin, truth, prediction, pixels) -> [BINS, C, C]."""
    j = np.zeros((BINS, 3, 3), np.int64)
    for b, t, p, n in cells:
        j[b, t, p] += n
    return j


def test_threshold_of_a_bin_is_the_sigmoid_of_its_lower_logit_edge():
    assert threshold_of(0) == 0.0
    assert threshold_of(1600) == pytest.approx(0.5)
    assert threshold_of(2001) == pytest.approx(1 / (1 + math.exp(-4.01)))


def test_per_class_thresholds_exact_and_unreachable_and_unmeasured_classes_named():
    j = joint_of([(3000, 0, 0, 9), (3000, 1, 0, 1),  # road: 9 of 10 right high up
                  (2000, 0, 0, 10), (2000, 1, 0, 10),  # then 10 of 20: below 0.9 from here down
                  (3100, 0, 1, 5)])  # car: predicted 5 times, never right
    r = per_class_thresholds(j, 0.9, NAMES)
    # every bin from 2001 to 3000 keeps the same 10 road pixels: the lowest of them is the threshold
    assert r["thresholds"][0] == pytest.approx(threshold_of(2001))
    assert r["thresholds"][1] is None and r["unreachable"] == ["car"]
    assert r["thresholds"][2] is None and r["unmeasured"] == ["bike"]
    assert r["coverage"] == {"road": pytest.approx(10 / 30), "car": 0.0, "bike": None}
    assert r["total_coverage"] == pytest.approx(10 / 35) and r["kept_pixel_acc"] == pytest.approx(0.9)
    # a looser target keeps everything road predicts
    assert per_class_thresholds(j, 0.6, NAMES)["thresholds"][0] == 0.0
    # too few pixels to trust: a minimum count makes the class unreachable rather than guessed
    assert per_class_thresholds(j, 0.9, NAMES, min_pixels=11)["unreachable"] == ["road", "car"]


def test_coverage_at_accuracy_and_the_class_it_starves():
    j = joint_of([(3000, 0, 0, 95), (3000, 1, 1, 3), (3000, 1, 0, 2),  # top: 98 of 100 right
                  (1000, 1, 1, 5), (1000, 0, 1, 5)])  # low: 5 of 10
    r = coverage_at(j, 0.97, NAMES)
    assert r["threshold"] == pytest.approx(threshold_of(1001)) and r["coverage"] == pytest.approx(100 / 110)
    assert r["per_class_share"] == {"road": pytest.approx(95 / 100), "car": pytest.approx(5 / 10)}
    assert r["lowest_class"] == "car" and r["lowest_share"] == pytest.approx(0.5)
    assert coverage_at(j, 0.999, NAMES)["threshold"] is None  # unreachable: said, not guessed


def test_risk_coverage_area_orders_a_good_gate_before_a_bad_one():
    good = joint_of([(3000, 0, 0, 90), (100, 0, 1, 10)])  # the errors are the least confident pixels
    bad = joint_of([(100, 0, 0, 90), (3000, 0, 1, 10)])  # the errors are the most confident
    (_, a_good), (_, a_bad) = risk_coverage(good), risk_coverage(bad)
    assert a_good == pytest.approx(0.9 * 0 + 0.1 * 0.1) and a_bad == pytest.approx(0.1 * 1 + 0.9 * 0.1)
    assert summarize_source(good, NAMES)["auroc"] == 1.0 and summarize_source(bad, NAMES)["auroc"] == 0.0


def test_thresholds_chosen_on_one_set_applied_to_another():
    from ssseg.gate import apply_thresholds, bin_of

    assert all(bin_of(threshold_of(k)) == k for k in (0, 1, 1600, 2001, 3199))
    calib = joint_of([(3000, 0, 0, 9), (3000, 1, 0, 1), (2000, 0, 0, 10), (2000, 1, 0, 10), (3100, 0, 1, 5)])
    table = per_class_thresholds(calib, 0.9, NAMES)["thresholds"]
    new = joint_of([(2500, 0, 0, 6), (2500, 1, 0, 4), (1000, 0, 0, 10), (3100, 1, 1, 5)])
    r = apply_thresholds(new, table, NAMES)
    # road keeps its bins >= 2001 (10 pixels, 6 right); car is never kept there, however right it would be
    assert r["total_coverage"] == pytest.approx(10 / 25) and r["kept_pixel_acc"] == pytest.approx(0.6)
    assert r["per_class"]["road"] == {"share": pytest.approx(10 / 20), "precision": pytest.approx(0.6)}
    assert r["per_class"]["car"] == {"share": 0.0, "precision": None}


# --- the gate as data, and the one rule that applies it ---------------------------------------------------

@pytest.mark.parametrize("mutate, key", [
    (lambda g: g.update(thresholds=[0.5]), "gate.thresholds must hold one entry per class (3), not 1"),
    (lambda g: g.update(thresholds=[0.5, float("nan"), 0.9]), "gate.thresholds must hold 3 numbers"),
    (lambda g: g.update(thresholds=[0.5, 1.5, 0.9]), "(entry 1 is 1.5)"),
    (lambda g: g.update(thresholds=[0.5, "0.9", None]), "(entry 1 is '0.9')"),
    (lambda g: g.update(threshold=float("nan")), "gate.threshold must be a number in [0, 1] or null"),
    (lambda g: g.update(calibration={"tables": {"0.97": [0.5, None]}}), "gate.calibration.tables[0.97] must hold"),
    (lambda g: g.update(calibration={"tables": [0.5]}), "gate.calibration.tables must be an object"),
    (lambda g: g.update(available="yes"), "gate.available is missing or not a boolean"),
    (lambda g: g.update(ignore_value=True), "gate.ignore_value is missing or not an integer"),
])
def test_a_malformed_gate_is_one_line_naming_the_file_and_the_key(mutate, key, tmp_path):
    from ssseg.errors import ModelError
    from ssseg.gate import Gate

    gate = {"available": True, "kind": "softmax", "threshold": 0.7, "ignore_value": 255}
    assert Gate.read(gate, 3, tmp_path / "model.json").threshold == 0.7
    mutate(gate)
    with pytest.raises(ModelError) as e:
        Gate.read(gate, 3, tmp_path / "model.json")
    assert key in str(e.value) and str(tmp_path / "model.json") in str(e.value) and "\n" not in str(e.value)


def test_the_gate_chosen_and_applied_alike_on_numpy_and_torch(tmp_path):
    """Gate.choose is the one rule every job applies (an option, else a calibrated table, else model.json's
    table, else its threshold); kept/apply give the same pixels on numpy arrays and torch tensors."""
    import torch

    from ssseg.errors import ConfigError, ModelError
    from ssseg.gate import Gate, applied, apply, kept

    table = [0.5, None, 0.9]
    gate = Gate(available=True, source="softmax", threshold=0.7, thresholds=table, tables={"0.97": [0.1, 0.2, 0.3]})
    assert gate.choose() == table and gate.choose(0.4) == 0.4 and gate.choose(precision=0.97) == [0.1, 0.2, 0.3]
    assert Gate(available=True, threshold=0.7).choose() == 0.7
    with pytest.raises(ModelError, match=r"no per-class thresholds for precision 0.9 \(calibrated: 0.97\)"):
        gate.choose(precision=0.9)
    assert Gate(available=False).choose() is None
    with pytest.raises(ConfigError, match="needs a confidence source"):
        Gate(available=False).choose(0.5)
    labels = np.array([[0, 0, 1, 2, 2, 7]], np.uint8)
    conf = np.array([[0.5, 0.49999, 1.0, 0.9, 0.89999, 1.0]], np.float32)
    want = [[0, 255, 255, 2, 255, 255]]
    assert apply(labels, conf, applied(gate.choose())).tolist() == want
    t = torch.from_numpy(applied(gate.choose()))
    assert apply(torch.from_numpy(labels).long(), torch.from_numpy(conf), t).tolist() == want
    assert kept(torch.from_numpy(conf), 0.9).tolist() == (conf >= 0.9).tolist()
    assert apply(labels, conf, np.float32(0.9)).tolist() == apply(labels, conf, 0.9).tolist()  # a numpy number
