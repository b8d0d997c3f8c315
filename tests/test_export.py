"""ssseg export: ONNX parity with PyTorch for all three graphs (fixed and dynamic batch), the TensorRT
operator check, model.json, errors before long work, and the TensorRT plumbing that runs without TensorRT
(version dispatch, profiles, INT8 calibration batching and cache, engine compatibility)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import run_cli
from onnx import TensorProto, helper
from PIL import Image

from ssseg.checkpoint import build_from_checkpoint, load_checkpoint
from ssseg.config import ExportConfig
from ssseg.data.synthetic import render_scene
from ssseg.errors import ConfigError, DataError, ExportError, ModelError
from ssseg.export import run_export
from ssseg.export.compat import tensorrt_problems
from ssseg.export.engines import merge_engines
from ssseg.export.graphs import Normalize
from ssseg.export.tensorrt import CalibrationSource, calibration_key, profile_shapes, split_frames, trtexec_command
from ssseg.io import sha256_file
from ssseg.runtime.frames import load_frame
from ssseg.runtime.model import read_model, validate_model
from ssseg.runtime.ort import ort_session
from ssseg.runtime.trt import TrtApi, check_engine, parse_version, precision_advice
from ssseg.segmenters import DEFAULT_SEGMENTER, get_spec
from ssseg.train.config import TrainConfig
from ssseg.train.engine import train

TINY = "synthetic:size=64x64,train=8,val=4,test=4"


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory) -> Path:
    """Real-looking frames of mixed sizes, plus a file that is not an image."""
    root = tmp_path_factory.mktemp("frames")
    for i in range(7):
        size = (64, 64) if i % 2 else (72, 96)
        Image.fromarray(render_scene(7, "test", i, size)[0]).save(root / f"f{i:02d}.png")
    (root / "notes.txt").write_text("not a frame")
    return root


def run_reference(run: Path, frames: np.ndarray, stage: str = "stage3"):
    """Labels and confidence straight from the checkpoints, normalising like training does."""
    seg = build_from_checkpoint(load_checkpoint(run / stage / "best.pt")).eval()
    aux = build_from_checkpoint(load_checkpoint(run / "stage2" / "best.pt")).eval()
    from ssseg.models.confidence import segment_with_confidence
    from ssseg.train.data import Norm, normalize

    with torch.no_grad():
        logits, conf = segment_with_confidence(seg, aux, normalize(torch.from_numpy(frames), torch.device("cpu"),
                                                                   Norm.of(seg)))
    return logits.argmax(1).numpy().astype(np.uint8), torch.sigmoid(conf)[:, 0].numpy()


# --- export end to end ----------------------------------------------------------------------------------

def test_export_dynamic_batch_matches_pytorch_in_onnx_runtime(aux_run, frames_dir, tmp_path):
    out = tmp_path / "model"
    r = run_cli("export", str(aux_run), "--out", str(out), "--dynamic-batch", "1:2:4", "--calib-data", str(frames_dir),
                "--verify-images", "4", "--input-size", "64x64", "--gate", "net")
    assert r.returncode == 0, r.stderr
    assert "label_agreement" in r.stdout and "argmax_agreement" in r.stdout
    spec = read_model(out)
    d = spec.data
    assert validate_model(d) == []
    assert sorted(d["graphs"]) == ["aux", "labeler", "segmenter"]
    assert d["gate"] == {"available": True, "kind": "aux", "model": "aux-confidence", "threshold": 0.7,
                         "ignore_value": 255, "aux_input": "probs"}
    assert d["input"]["batch"] == {"min": 1, "opt": 2, "max": 4} and spec.input_hw == (64, 64)
    # the default segmenter's normalisation and spec, recorded as training used them
    spec_d = get_spec(DEFAULT_SEGMENTER)
    assert d["normalization"]["mean"] == list(spec_d.mean) and d["normalization"]["std"] == list(spec_d.std)
    assert d["segmenter"]["name"] == DEFAULT_SEGMENTER == spec.segmenter and d["segmenter"]["input_multiple"] == 8
    assert d["classes"]["names"] == list(load_checkpoint(aux_run / "stage3" / "best.pt")["classes"]["names"])
    assert d["source"]["segmenter"]["sha256"] == sha256_file(aux_run / "stage3" / "best.pt")
    assert d["source"]["segmenter"]["stage"] == 3 and d["source"]["aux"]["trained_against"].endswith("stage1/best.pt")
    assert d["verification"]["passed"] and d["verification"]["batch_sizes"] == [1, 2, 4]
    assert d["graphs"]["labeler"]["outputs"] == {"labels": {"dtype": "uint8", "shape": ["batch", 64, 64]},
                                                 "confidence": {"dtype": "float32", "shape": ["batch", 64, 64]}}
    assert {"torch", "onnx", "onnxruntime", "onnxslim"} <= set(d["tools"]) and d["opset"] == 17
    assert not list(out.glob(".staging-*"))

    # the fused labeler at batch 1 and 4 against the training-time pipeline on frames prepared as at inference
    frames = np.stack([load_frame(p, (64, 64)) for p in sorted(frames_dir.glob("*.png"))[:4]])
    labels_ref, conf_ref = run_reference(aux_run, frames)
    session = ort_session(spec.graph("labeler"))
    for b in (1, 4):
        got = [session.run(None, {"image": frames[i:i + b]}) for i in range(0, 4, b)]
        labels = np.concatenate([g[0] for g in got])
        conf = np.concatenate([g[1] for g in got])
        assert labels.dtype == np.uint8 and conf.dtype == np.float32
        assert (labels == labels_ref).mean() >= 0.999
        assert np.abs(conf - conf_ref).max() < 1e-4
    # the standalone graphs compose to the labeler
    logits = ort_session(spec.graph("segmenter")).run(None, {"image": frames})[0]
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    conf = ort_session(spec.graph("aux")).run(None, {"probs": probs})[0]
    assert np.abs(conf - conf_ref).max() < 1e-4 and (logits.argmax(1) == labels_ref).mean() >= 0.999

    # every graph passes the TensorRT check
    for name in ("segmenter", "aux", "labeler"):
        assert tensorrt_problems(onnx.load(str(spec.graph(name)))) == []


def test_fixed_batch_graph_rejects_other_batches(aux_run, tmp_path):
    run_export(ExportConfig(run=aux_run, out=tmp_path / "m", gate="net", batch=2, verify_images=2, input_size=(64, 64)),
               say=lambda *_: None)
    spec = read_model(tmp_path / "m")
    assert spec.batch_range == (2, 2, 2)
    assert spec.data["graphs"]["labeler"]["inputs"]["image"]["shape"] == [2, 64, 64, 3]
    session = ort_session(spec.graph("labeler"))
    assert session.run(None, {"image": np.zeros((2, 64, 64, 3), np.uint8)})[0].shape == (2, 64, 64)
    with pytest.raises(Exception):
        session.run(None, {"image": np.zeros((1, 64, 64, 3), np.uint8)})


@pytest.mark.parametrize("name", ["dsnet-fast-ss", "efficientnet-lite0"])
def test_normalisation_in_the_graph_is_the_training_normalisation(name):
    from ssseg.train.data import Norm, normalize

    x = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    spec = get_spec(name)
    assert torch.allclose(Normalize(spec.mean, spec.std)(x), normalize(x, torch.device("cpu"), Norm.of(name)),
                          atol=1e-6)


def test_default_gate_is_max_softmax_calibrated_per_class_and_gate_none_exports_the_segmenter_alone(tmp_path):
    run = train(TrainConfig(data=TINY, method="supervised", out=tmp_path / "sup", epochs=1, batch_size=4, workers=0,
                            device="cpu"), log=lambda *_: None)
    said: list[str] = []
    run_export(ExportConfig(run=run, out=tmp_path / "d", verify_images=2), say=said.append)
    gate = read_model(tmp_path / "d").data["gate"]
    assert gate["kind"] == "softmax" and gate["threshold"] is None and gate["available"]
    assert gate["calibration"]["target_precision"] == 0.97 and len(gate["thresholds"]) == 9
    assert any(line.startswith("calibrated the softmax gate on") for line in said)

    run_export(ExportConfig(run=run, out=tmp_path / "m", gate="none", verify_images=2), say=said.append)
    spec = read_model(tmp_path / "m")
    assert sorted(spec.data["graphs"]) == ["labeler", "segmenter"] and not spec.gate.available
    assert spec.data["gate"]["reason"] == "exported with --gate none" and spec.gate.threshold is None
    assert list(spec.data["graphs"]["labeler"]["outputs"]) == ["labels"]
    with pytest.raises(ModelError, match="no aux graph"):
        spec.graph("aux")


@pytest.mark.parametrize("kind", ["softmax", "entropy"])
def test_free_gates_export_with_per_class_thresholds_and_pass_the_ort_parity_check(aux_run, kind, tmp_path):
    """A gate from the segmenter's own softmax: no aux graph, the confidence computed inside the labeler and
    verified against PyTorch in ONNX Runtime; --target-precision writes the per-class tables that label uses."""
    from ssseg.config import LabelConfig
    from ssseg.gate import apply, threshold_table
    from ssseg.label import run_label
    from ssseg.runtime.backends import OrtBackend

    assert ExportConfig(run=aux_run, gate=kind).target_precision == (0.97,)  # calibrated unless --threshold
    assert ExportConfig(run=aux_run, gate=kind, threshold=0.5).target_precision == ()
    for bad, expect in (({"gate": "margin"}, "TopK"),
                        ({"gate": "none", "threshold": 0.5}, "mean nothing"), ({"target_precision": "1.2"}, "(0, 1)")):
        with pytest.raises(ConfigError, match=expect):
            ExportConfig(run=aux_run, **bad)
    said: list[str] = []
    run_export(ExportConfig(run=aux_run, out=tmp_path / "m", gate=kind, target_precision="0.9,0.6",
                            verify_images=2), say=said.append)
    spec = read_model(tmp_path / "m")
    assert sorted(spec.data["graphs"]) == ["labeler", "segmenter"] and spec.gate.available
    assert spec.data["gate"]["kind"] == kind and spec.data["gate"]["model"] is None and spec.gate.threshold is None
    assert spec.data["verification"]["passed"] and "confidence_max_abs_diff" in spec.data["verification"]["graphs"][
        "labeler"]
    cal = spec.data["gate"]["calibration"]
    assert cal["split"] == "val" and cal["images"] == 4 and sorted(cal["tables"]) == ["0.6", "0.9"]
    assert spec.gate.thresholds == cal["tables"]["0.9"] and spec.gate.table_for(0.6) == cal["tables"]["0.6"]
    assert any(line.startswith(f"calibrated the {kind} gate on 4 val images") for line in said)
    # a looser precision never needs a higher threshold
    for lo, hi in zip(cal["tables"]["0.6"], cal["tables"]["0.9"]):
        assert hi is None or (lo is not None and lo <= hi)

    # ssseg label applies that table: each mask is the ORT labeler's labels gated by it, pixel for pixel
    shots = tmp_path / "shots"
    shots.mkdir()
    frames = np.stack([render_scene(3, "test", i, (64, 64))[0] for i in range(3)])
    for i, f in enumerate(frames):
        Image.fromarray(f).save(shots / f"s{i}.png")
    assert run_label(LabelConfig(inputs=(str(shots),), model=tmp_path / "m", out=tmp_path / "lab"),
                     say=lambda *_: None) == 0
    job = json.loads((tmp_path / "lab" / "job.json").read_text())
    assert job["settings"]["threshold"] == spec.gate.thresholds
    backend, table = OrtBackend(spec).load(), threshold_table(spec.gate.thresholds)
    for i in range(3):
        labels, conf = backend.infer(frames[i:i + 1])
        written = np.asarray(Image.open(tmp_path / "lab" / "shots" / "labels" / f"s{i}.png"))
        assert written.tolist() == apply(labels[0], conf[0], table).tolist()


# --- errors before long work, and nothing lost ----------------------------------------------------------

def test_unfinished_run_and_bad_options_fail_before_writing(aux_run, tmp_path, frames_dir):
    unfinished = tmp_path / "unfinished"
    (unfinished / "stage1").mkdir(parents=True)
    (unfinished / "config.json").write_text((aux_run / "config.json").read_text())
    (unfinished / "stage1" / "done.json").write_text("{}")
    with pytest.raises(ExportError, match="stage2 has no done.json.*--resume.*--segmenter"):
        run_export(ExportConfig(run=unfinished, out=tmp_path / "m"))
    with pytest.raises(ExportError, match="not a run directory"):
        run_export(ExportConfig(run=tmp_path, out=tmp_path / "m"))
    with pytest.raises(ConfigError, match="not a multiple of 8 — pass e.g. 64x104"):
        run_export(ExportConfig(run=aux_run, out=tmp_path / "m", input_size="60x100"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="holds no readable images"):
        run_export(ExportConfig(run=aux_run, out=tmp_path / "m", gate="net", calib_data=empty))
    with pytest.raises(ConfigError, match="MIN <= OPT <= MAX"):
        ExportConfig(run=aux_run, dynamic_batch="4:2:8")
    with pytest.raises(ConfigError, match="unknown --precision int4"):
        ExportConfig(run=aux_run, precision="fp16,int4")
    with pytest.raises(ExportError, match="not a segmenter"):
        run_export(ExportConfig(run=aux_run, out=tmp_path / "m", gate="net", segmenter=aux_run / "stage2" / "best.pt"))
    # Before: an aux run without stage2/best.pt exported ungated with exit 0, saying stage 2 was "not finished".
    no_net = tmp_path / "no_net"
    shutil.copytree(aux_run, no_net)
    (no_net / "stage2" / "best.pt").unlink()
    with pytest.raises(ExportError, match=r"--gate net, but .*stage2/best.pt \(the confidence net\) is missing"):
        run_export(ExportConfig(run=no_net, out=tmp_path / "m", gate="net"))
    assert not (tmp_path / "m").exists()




def test_cli_errors_are_one_line_without_traceback(aux_run, tmp_path):
    r = run_cli("export", str(aux_run), "--out", str(tmp_path / "m"), "--trt", "--input-size", "64x64")
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "tensorrt" in r.stderr and not (tmp_path / "m").exists()
    r = run_cli("export", str(aux_run), "--input-size", "63x64")
    assert r.returncode == 1 and "not a multiple of 8" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_failed_verification_leaves_the_previous_export_untouched(aux_run, tmp_path, monkeypatch):
    out = tmp_path / "m"
    run_export(ExportConfig(run=aux_run, out=out, gate="net", verify_images=2), say=lambda *_: None)
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    import ssseg.export.verify as verify

    monkeypatch.setitem(verify.TOLERANCES, "confidence_max_abs_diff", -1.0)  # nothing can pass
    with pytest.raises(ExportError, match="ONNX Runtime disagrees with PyTorch"):
        run_export(ExportConfig(run=aux_run, out=out, gate="net", verify_images=2, opset=16), say=lambda *_: None)
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before  # no staging left, nothing replaced
    assert read_model(out).data["opset"] == 17


def test_another_runs_model_directory_is_not_overwritten(aux_run, tmp_path):
    out = tmp_path / "m"
    run_export(ExportConfig(run=aux_run, out=out, gate="net", verify_images=2, verify=False), say=lambda *_: None)
    data = json.loads((out / "model.json").read_text())
    data["source"]["run"] = "/somewhere/else"
    (out / "model.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match="holds the export of another run"):
        run_export(ExportConfig(run=aux_run, out=out, gate="net", verify=False))


# --- the operator allow-list ----------------------------------------------------------------------------

def _graph(nodes, inputs, outputs, opset=17, initializers=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_operator_check_flags_what_tensorrt_cannot_parse():
    x = _vi("x", TensorProto.FLOAT, [1, 3, 8, 8])
    ok = _graph([helper.make_node("Relu", ["x"], ["y"])], [x], [_vi("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    assert tensorrt_problems(ok) == []
    assert "opset 18" in tensorrt_problems(_graph(ok.graph.node, [x], list(ok.graph.output), opset=18))[0]
    odd = _graph([helper.make_node("Einsum", ["x"], ["y"], equation="ij->ji")], [x], list(ok.graph.output))
    assert "not on the TensorRT allow-list" in tensorrt_problems(odd)[0]
    plugin = _graph([helper.make_node("MyOp", ["x"], ["y"], domain="com.me")], [x], list(ok.graph.output))
    assert "needs a TensorRT plugin" in tensorrt_problems(plugin)[0]
    roi = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    resize = _graph([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic",
                                      coordinate_transformation_mode="tf_crop_and_resize")],
                    [x], [_vi("y", TensorProto.FLOAT, [1, 3, 16, 16])], initializers=[roi])
    found = " ".join(tensorrt_problems(resize))
    assert "tf_crop_and_resize" in found and "mode cubic" in found
    out64 = _graph([helper.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0)], [x],
                   [_vi("y", TensorProto.INT64, [1, 8, 8])])
    assert "INT64" in tensorrt_problems(out64)[0]


def test_argmax_straight_to_uint8_is_caught_and_the_exported_form_passes(tmp_path):
    """TensorRT 8.6 casts to UINT8 only from FLOAT/HALF: torch's argmax().to(uint8) exports INT64 -> UINT8."""
    from ssseg.export.graphs import argmax_uint8

    class Direct(torch.nn.Module):
        def forward(self, x):
            return torch.argmax(x, 1).to(torch.uint8)

    class Exported(torch.nn.Module):
        def forward(self, x):
            return argmax_uint8(x)

    x = torch.randn(1, 5, 8, 8)
    for module, ok in ((Direct(), False), (Exported(), True)):
        path = tmp_path / f"{type(module).__name__}.onnx"
        with pytest.warns(DeprecationWarning):  # the TorchScript exporter, as ssseg uses it
            torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17)
        problems = tensorrt_problems(onnx.load(str(path)))
        assert (problems == []) is ok, problems
        if not ok:
            assert "casts UINT8 only to/from FLOAT" in problems[0]


# --- model.json -----------------------------------------------------------------------------------------

def test_model_json_schema_and_its_errors(aux_run, tmp_path):
    out = tmp_path / "m"
    run_export(ExportConfig(run=aux_run, out=out, gate="net", verify=False), say=lambda *_: None)
    good = json.loads((out / "model.json").read_text())
    assert validate_model(good) == []
    for mutate, expect in (
        (lambda d: d["input"].pop("height"), "missing input.height"),
        (lambda d: d["classes"]["colors"].pop(), "one [r, g, b] per class"),
        (lambda d: d["input"].update(batch={"min": 4, "opt": 2, "max": 8}), "min <= opt <= max"),
        (lambda d: d["gate"].update(threshold=True), "gate.threshold"),
        (lambda d: d["graphs"]["labeler"]["outputs"].pop("confidence"), "no confidence output"),
        (lambda d: d["engines"].append({"file": "x.engine"}), "engines[0].graph"),
        (lambda d: d["gate"].update(thresholds=[0.5]), "gate.thresholds must hold"),
        (lambda d: d["gate"].update(thresholds=[1.5] * len(d["classes"]["names"])), "gate.thresholds must hold"),
        (lambda d: d["gate"].update(calibration={"tables": {"0.97": [True] * len(d["classes"]["names"])}}),
         "gate.calibration.tables[0.97]"),
    ):
        d = json.loads(json.dumps(good))
        mutate(d)
        assert any(expect in p for p in validate_model(d)), (expect, validate_model(d))
    with pytest.raises(ModelError, match="no model.json here"):
        read_model(tmp_path)
    (tmp_path / "other.json").write_text(json.dumps({**good, "format": "something"}))
    with pytest.raises(ModelError, match="not an ssseg model.json"):
        read_model(tmp_path / "other.json")
    (tmp_path / "newer.json").write_text(json.dumps({**good, "format_version": 3}))
    with pytest.raises(ModelError, match="format 3 .* this ssseg reads format 1 or 2"):
        read_model(tmp_path / "newer.json")
    # version 1 (no per-class keys) is still read; a per-class table round-trips, and a precision export never
    # calibrated is refused with the fix
    n = len(good["classes"]["names"])
    (tmp_path / "v1.json").write_text(json.dumps({**good, "format_version": 1}))
    assert read_model(tmp_path / "v1.json").gate.thresholds is None
    table = [0.5, None] + [0.9] * (n - 2)
    gate = {**good["gate"], "thresholds": table, "calibration": {"tables": {"0.97": table}}}
    (tmp_path / "table.json").write_text(json.dumps({**good, "gate": gate}))
    spec = read_model(tmp_path / "table.json")
    assert spec.gate.thresholds == table and spec.gate.table_for(0.97) == table
    with pytest.raises(ModelError, match="no per-class thresholds for precision 0.99 .calibrated: 0.97"):
        spec.gate.table_for(0.99)
    with open(out / "aux.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="does not match the sha256"):
        read_model(out).graph("aux")


# --- TensorRT plumbing without TensorRT -----------------------------------------------------------------

def test_version_dispatch():
    assert parse_version("8.6.1.post1") == (8, 6, 1) and parse_version("10.13.3.9") == (10, 13, 3, 9)
    fake = types.SimpleNamespace(NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0,
                                                                                      STRONGLY_TYPED=2))
    assert TrtApi((8, 6, 1)).network_flags(fake) == 1  # 8.x parses ONNX only in explicit-batch mode
    assert TrtApi((10, 3, 0)).network_flags(fake) == 4  # 10.x, 11.x: strongly typed, the graph's precision
    assert TrtApi((8, 6, 1)).builder_flags("best") == ("FP16", "INT8")
    assert TrtApi((8, 6, 1)).graph_precision("int8") == "fp32" and TrtApi((8, 6, 1)).calibrates("int8")
    for v in ((10, 3), (11, 4)):  # explicit precision: the Q/DQ and FP16 graphs, no flags, no calibrator
        api = TrtApi(v)
        assert api.builder_flags("int8") == () and api.graph_precision("int8") == "int8"
        assert api.graph_precision("fp16") == "fp16" and not api.calibrates("int8")
    with pytest.raises(ExportError, match="too old; ssseg needs 8.6"):
        TrtApi((8, 5, 3))
    with pytest.raises(ExportError, match="--precision best is TensorRT 8.6's mixed mode"):
        TrtApi((11, 0)).builder_flags("best")
    assert "int8" in precision_advice("6.1", "fp16") and precision_advice("8.9", "fp16") is None
    assert precision_advice("6.1", "int8") is None


def test_engine_compatibility_names_the_rebuild_command(tmp_path):
    entry = {"file": "labeler.fp16.engine", "tensorrt": "10.3.0",
             "gpu": {"name": "NVIDIA H100", "compute_capability": "9.0"},
             "rebuild": "ssseg export runs/x --out m --trt --precision fp16"}
    check_engine(entry, "10.3.0.26", {"name": "NVIDIA H100", "compute_capability": "9.0"}, tmp_path)
    with pytest.raises(ModelError, match="TensorRT 10.3.0, this machine has 8.6.1 .* ssseg export runs/x"):
        check_engine(entry, "8.6.1", {"compute_capability": "9.0"}, tmp_path)
    with pytest.raises(ModelError, match="compute capability 9.0.*GTX 1080 Ti \\(6.1\\).*rebuild it here"):
        check_engine(entry, "10.3.0", {"name": "GTX 1080 Ti", "compute_capability": "6.1"}, tmp_path)


def test_profiles_and_trtexec_command():
    assert profile_shapes((360, 480), (1, 4, 8)) == {"min": (1, 360, 480, 3), "opt": (4, 360, 480, 3),
                                                     "max": (8, 360, 480, 3)}
    cmd = trtexec_command("labeler.onnx", "labeler.int8.engine", "int8", (360, 480), (1, 4, 8), 2048,
                          "trt.timing.cache", "labeler.int8.calib")
    assert cmd.split() == ["trtexec", "--onnx=labeler.onnx", "--saveEngine=labeler.int8.engine", "--int8",
                           "--calib=labeler.int8.calib", "--minShapes=image:1x360x480x3",
                           "--optShapes=image:4x360x480x3", "--maxShapes=image:8x360x480x3",
                           "--memPoolSize=workspace:2048", "--timingCacheFile=trt.timing.cache"]
    static = trtexec_command("s.onnx", "s.fp16.engine", "fp16", (360, 480), (2, 2, 2), 512)
    assert "--fp16" in static and "Shapes" not in static
    typed = trtexec_command("s.int8.onnx", "s.int8.engine", "int8", (360, 480), (2, 2, 2), 512, strongly_typed=True)
    assert typed.split()[:4] == ["trtexec", "--onnx=s.int8.onnx", "--saveEngine=s.int8.engine", "--stronglyTyped"]
    assert "--int8" not in typed


def test_calibration_frames_split_and_batch_exactly_as_at_inference(frames_dir, tmp_path):
    paths = sorted(frames_dir.glob("*.png"))
    calib, check, held_out = split_frames(paths, 500, 2)
    assert held_out and check == paths[-2:] and calib == paths[:-2]
    calib2, check2, held2 = split_frames(paths[:2], 500, 4)
    assert not held2 and calib2 == check2 == paths[:2]

    uploads: list[np.ndarray] = []

    def upload(array):
        uploads.append(array.copy())
        return 1000 + len(uploads)

    key = calibration_key("abc", calib, (64, 64), 2)
    src = CalibrationSource(calib, (64, 64), 2, tmp_path / "x.calib", key, upload)
    assert src.n_batches == 2
    pointers = [src.next_pointers(["image"]) for _ in range(3)]
    assert pointers == [[1001], [1002], None]  # 5 frames, batch 2: the short last batch is left out
    assert src.used == 4
    expected = np.stack([load_frame(p, (64, 64)) for p in calib[:4]])
    got = np.concatenate(uploads)
    assert got.dtype == np.uint8 and got.shape == (4, 64, 64, 3) and np.array_equal(got, expected)

    assert src.read_cache() is None
    src.write_cache(b"TRT-8601-EntropyCalibration2\nimage: 3c010a14\n")
    assert src.read_cache().startswith(b"TRT-8601")
    other = CalibrationSource(calib, (64, 64), 2, tmp_path / "x.calib", calibration_key("abd", calib, (64, 64), 2),
                              upload)
    assert other.read_cache() is None  # another ONNX graph: recalibrate
    with pytest.raises(ExportError, match="at least 8 frames"):
        CalibrationSource(calib, (64, 64), 8, tmp_path / "y.calib", key, upload)


def test_engines_of_an_earlier_export_stay_listed_only_while_current(tmp_path):
    graphs = {"labeler": {"sha256": "new"}, "segmenter": {"sha256": "seg"}}
    (tmp_path / "labeler.fp16.engine").write_bytes(b"plan")
    (tmp_path / "segmenter.fp16.engine").write_bytes(b"plan")
    previous = [{"file": "labeler.fp16.engine", "graph": "labeler", "onnx_sha256": "old"},
                {"file": "segmenter.fp16.engine", "graph": "segmenter", "onnx_sha256": "seg"},
                {"file": "segmenter.int8.engine", "graph": "segmenter", "onnx_sha256": "seg"}]
    new = [{"file": "labeler.int8.engine", "graph": "labeler", "onnx_sha256": "new"}]
    engines, stale = merge_engines(previous, new, graphs, tmp_path)
    assert [e["file"] for e in engines] == ["segmenter.fp16.engine", "labeler.int8.engine"]
    assert [e["file"] for e in stale] == ["labeler.fp16.engine", "segmenter.int8.engine"]


def loose_int8_check(monkeypatch) -> None:
    """The tiny test network's INT8 graph flips more near-tied pixels than export's CamVid-sized tolerance allows
    (tests/test_precision.py tests the tolerance itself)."""
    from ssseg.export import reduced

    monkeypatch.setitem(reduced.TOLERANCES, "int8", {"min_argmax_agreement": 0.8, "min_gate_agreement": 0.8,
                                                     "max_miou_drop": 20.0})


@pytest.mark.slow
def test_trt_path_with_a_stand_in_for_tensorrt(aux_run, frames_dir, tmp_path, monkeypatch):
    """The --trt code around TensorRT, run against tests/fake_tensorrt.py (TensorRT itself is not installable
    here): engines staged and listed in model.json, INT8 calibrated on the calibration frames at the opt
    batch and reused from its cache on rebuild, timing cache carried between builds, checks against ORT."""
    import fake_tensorrt

    trt, modules = fake_tensorrt.make("8.6.1")
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    loose_int8_check(monkeypatch)
    out = tmp_path / "m"
    said: list[str] = []
    cfg = dict(run=aux_run, out=out, trt=True, precision="fp32,int8", calib_data=frames_dir, verify_images=2,
               dynamic_batch="1:2:4", input_size=(64, 64), calib_images=4)
    run_export(ExportConfig(**cfg), say=said.append)
    spec = read_model(out)
    files = sorted(e["file"] for e in spec.engines())
    assert files == ["labeler.fp32.engine", "labeler.int8.engine", "segmenter.fp32.engine", "segmenter.int8.engine"]
    # the plan, nothing prepended
    assert all((out / f).read_bytes().startswith(fake_tensorrt.PLAN_MAGIC) for f in files)
    int8 = next(e for e in spec.engines("labeler") if e["precision"] == "int8")
    assert (int8["calibration"]["frames"] == 4 and int8["calibration"]["batch"] == 2
            and not int8["calibration"]["reused_cache"])
    assert int8["check"]["held_out_from_calibration"] and int8["check"]["argmax_agreement"] == 1.0
    assert int8["gpu"]["compute_capability"] == "6.1" and int8["tensorrt"] == "8.6.1"
    assert int8["trtexec"].startswith("trtexec --onnx=labeler.onnx --saveEngine=labeler.int8.engine --int8")
    assert "--dynamic-batch 1:2:4" in int8["rebuild"] and "--precision int8" in int8["rebuild"]
    assert int8["onnx_sha256"] == spec.data["graphs"]["labeler"]["sha256"]
    builds = [c for c in trt.calls if c[0] == "build"]
    assert builds == [("build", "segmenter.onnx", (), 0), ("build", "segmenter.onnx", ("INT8",), 2),
                      ("build", "labeler.onnx", (), 0), ("build", "labeler.onnx", ("INT8",), 2)]
    assert ("network_flags", 1) in trt.calls  # TensorRT 8.6: explicit batch
    assert ("calibration_profile",
            {"name": "image", "min": (1, 64, 64, 3), "opt": (2, 64, 64, 3), "max": (4, 64, 64, 3)}) in trt.calls
    assert (out / "labeler.int8.calib").is_file() and (out / "trt.timing.cache").is_file()
    assert [c[1] for c in trt.calls if c[0] == "timing_cache_in"][:2] == [b"", b"+timed"]

    # rebuilding INT8 alone reuses the calibration cache and keeps the FP32 engines listed; a timing cache
    # from another GPU (set_timing_cache False) is replaced by a fresh one instead of crashing after the build
    trt.calls.clear()
    (out / "trt.timing.cache").write_bytes(b"other-gpu")
    run_export(ExportConfig(**{**cfg, "precision": "int8", "onnx": False}), say=said.append)
    assert (out / "trt.timing.cache").read_bytes() == b"+timed+timed"
    spec = read_model(out)
    assert len(spec.engines()) == 4
    assert [c[3] for c in trt.calls if c[0] == "build"] == [0, 0]  # no calibration batches: cache reused
    assert all(e["calibration"]["reused_cache"] for e in spec.engines() if e["precision"] == "int8")
    assert not any("slow FP16" in line for line in said)  # fp16 was not asked for
    assert any(line.strip().startswith("same build with trtexec") for line in said)
    with pytest.raises(ConfigError, match="int8 needs real frames"):
        ExportConfig(**{**cfg, "calib_data": None})


@pytest.mark.slow
def test_trt_10_and_11_build_reduced_engines_from_the_qdq_and_fp16_graphs(aux_run, frames_dir, tmp_path,
                                                                         monkeypatch):
    """Explicit precision: a strongly typed network from labeler.int8.onnx / .fp16.onnx, no builder flag and no
    calibrator (TensorRT 11 has neither); the engine records the graph it came from."""
    import fake_tensorrt

    trt, modules = fake_tensorrt.make("11.4.0.106")
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    loose_int8_check(monkeypatch)
    out = tmp_path / "m"
    run_export(ExportConfig(run=aux_run, out=out, trt=True, precision="fp32,fp16,int8", calib_data=frames_dir,
                            verify_images=2, input_size=(64, 64), threshold=0.5), say=lambda *_: None)
    assert [c[1:] for c in trt.calls if c[0] == "build"] == [
        (f"{g}{p}.onnx", (), 0) for g in ("segmenter", "labeler") for p in ("", ".fp16", ".int8")]
    assert {c for c in trt.calls if c[0] == "network_flags"} == {("network_flags", 1 << 5)}  # STRONGLY_TYPED
    spec = read_model(out)
    int8 = next(e for e in spec.engines("labeler") if e["precision"] == "int8")
    qdq = next(r for r in spec.data["reduced"] if r["graph"] == "labeler" and r["precision"] == "int8")
    assert int8["onnx_sha256"] == qdq["sha256"] and int8["calibration"] is None
    assert "--onnx=labeler.int8.onnx" in int8["trtexec"] and "--stronglyTyped" in int8["trtexec"]
    with pytest.raises(ExportError, match="best is TensorRT 8.6's mixed mode"):
        run_export(ExportConfig(run=aux_run, out=out, trt=True, precision="best", calib_data=frames_dir,
                                input_size=(64, 64), threshold=0.5), say=lambda *_: None)


@pytest.mark.slow
def test_killed_export_leaves_the_model_directory_as_it_was(aux_run, tmp_path):
    import signal
    import time

    out = tmp_path / "m"
    run_export(ExportConfig(run=aux_run, out=out, gate="net", verify_images=2), say=lambda *_: None)
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    proc = subprocess.Popen([sys.executable, "-m", "ssseg", "export", str(aux_run), "--out", str(out), "--opset", "16",
                             "--gate", "net"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob(".staging-*/segmenter.onnx")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob(".staging-*")), "the export finished before it could be killed"
    assert {p.name: sha256_file(p) for p in out.iterdir() if p.is_file()} == before
    assert read_model(out).data["opset"] == 17
    run_export(ExportConfig(run=aux_run, out=out, gate="net", verify=False, opset=16), say=lambda *_: None)
    assert not list(out.glob(".staging-*")) and read_model(out).data["opset"] == 16
