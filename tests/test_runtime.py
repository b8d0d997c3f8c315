"""The runtime: one backend interface (ORT and torch here; TensorRT through the stand-in), auto-selection
and fallbacks without GPU packages, frame handling, the bench timing loop and its JSON, and the runtime
importing without torch."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import run_cli
from test_export import run_reference

from ssseg.config import BenchConfig, ExportConfig
from ssseg.errors import BackendError, ConfigError, ExportError, ModelError, NotAvailableError
from ssseg.gate import apply, threshold_table
from ssseg.runtime.backends import Backend, OrtBackend, OutOfMemory, WallTimer, choose_provider, open_backend
from ssseg.runtime.bench import BENCH_FORMAT, bench_backend, measure, run_bench
from ssseg.runtime.frames import resize_labels, resize_rgb
from ssseg.runtime.model import read_model


def frames(n, hw=(64, 64), seed=0):
    from ssseg.data.synthetic import render_scene

    return np.stack([render_scene(seed, "test", i, hw)[0] for i in range(n)])


# --- the interface --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ort", "torch"])
def test_backends_match_the_training_pipeline(name, exported, aux_run):
    backend = open_backend(exported, name)
    x = frames(3)
    labels, conf = backend.infer(x)
    ref_labels, ref_conf = run_reference(aux_run, x)
    assert labels.dtype == np.uint8 and labels.shape == (3, 64, 64) and conf.dtype == np.float32
    assert (labels == ref_labels).mean() >= 0.999 and np.abs(conf - ref_conf).max() <= 1e-3
    logits = backend.segment(x[:1])
    assert logits.shape == (1, 9, 64, 64) and (logits.argmax(1) == ref_labels[:1]).mean() >= 0.999
    assert backend.describe()["backend"] == name and backend.describe()["precision"] == "fp32"


def test_frames_are_resized_or_refused_never_reshaped(exported):
    backend = OrtBackend(exported)
    big = frames(2, (96, 128), seed=3)
    labels, _ = backend.infer(list(big))
    expected, _ = backend.infer(np.stack([resize_rgb(f, (64, 64)) for f in big]))
    assert labels.shape == (2, 64, 64) and np.array_equal(labels, expected)
    with pytest.raises(BackendError, match="uint8 HxWx3 RGB"):
        backend.infer(big.astype(np.float32))
    with pytest.raises(BackendError, match="uint8 HxWx3 RGB"):
        backend.infer(big[..., :1])
    with pytest.raises(BackendError, match="above the model's maximum batch 4 .* --dynamic-batch 1:4:5"):
        backend.infer(frames(5))
    spec = read_model(exported)
    spec.data["input"]["resize"] = "none"
    with pytest.raises(BackendError, match="96x128, the model takes 64x64 and model.json says not to resize"):
        OrtBackend(spec).infer(big)


def test_fixed_batch_models_pad_and_ungated_models_return_no_confidence(tmp_path):
    from ssseg.export import run_export
    from ssseg.train.config import TrainConfig
    from ssseg.train.engine import train

    run = train(TrainConfig(data="synthetic:size=64x64,train=4,val=2,test=2", method="supervised", out=tmp_path / "r",
                            epochs=1, batch_size=4, workers=0, device="cpu"), log=lambda *_: None)
    run_export(ExportConfig(run=run, out=tmp_path / "m", batch=2, gate="none", verify=False), say=lambda *_: None)
    labels, conf = OrtBackend(tmp_path / "m").infer(frames(1))
    assert labels.shape == (1, 64, 64) and conf is None


def test_gate_and_label_resize():
    labels = np.array([[1, 2], [3, 4]], np.uint8)
    conf = np.array([[0.95, 0.5], [0.9, 0.89]], np.float32)
    assert apply(labels, conf, 0.9).tolist() == [[1, 255], [3, 255]]
    assert resize_labels(labels, (4, 4)).tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_per_class_gate_table():
    """The same case as cpp/tests/test_core.cpp (Gate.PerClassThresholdsAndNeverKeptClasses): class 0 at 0.5,
    class 1 never kept, class 2 at 0.9, label 7 beyond the table, NaN never kept."""
    labels = np.array([[0, 0, 1, 2, 2, 7, 0]], np.uint8)
    conf = np.array([[0.5, 0.49999, 1.0, 0.9, 0.89999, 1.0, np.nan]], np.float32)
    table = threshold_table([0.5, None, 0.9])
    assert table.dtype == np.float32 and table.shape == (256,)
    assert apply(labels, conf, table).tolist() == [[0, 255, 255, 2, 255, 255, 255]]


# --- selection and fallbacks ----------------------------------------------------------------------------

def test_auto_selection_and_missing_backends(exported):
    said: list[str] = []
    backend = open_backend(exported, "auto", say=said.append)
    assert isinstance(backend, OrtBackend) and backend.provider == "CPUExecutionProvider"
    assert "not TensorRT" in said[0] and "tensorrt" in said[0]
    with pytest.raises(NotAvailableError, match=r"tensorrt\) is not installed .* pip install tensorrt"):
        open_backend(exported, "trt")
    with pytest.raises(NotAvailableError, match="CUDAExecutionProvider is not available .* onnxruntime-gpu"):
        open_backend(exported, "ort", "cuda")
    with pytest.raises(BackendError, match="unknown backend"):
        open_backend(exported, "tvm")
    with pytest.raises(BackendError, match="needs a CUDA device"):
        open_backend(exported, "torch", "fp16")
    assert choose_provider(None, ["CUDAExecutionProvider", "CPUExecutionProvider"]) == "CUDAExecutionProvider"
    assert choose_provider(None, ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]) \
        == "TensorrtExecutionProvider"
    assert choose_provider("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == "CPUExecutionProvider"
    with pytest.raises(ModelError, match="no model.json here"):
        open_backend(exported.parent, "ort")


@pytest.mark.slow
def test_tensorrt_backend_through_the_stand_in(aux_run, tmp_path, monkeypatch):
    import fake_tensorrt

    from ssseg.export import run_export

    trt, modules = fake_tensorrt.make("10.3.0.26")
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    out = tmp_path / "m"
    run_export(ExportConfig(run=aux_run, out=out, dynamic_batch="1:2:4", gate="net", verify=False), say=lambda *_: None)
    said: list[str] = []
    assert isinstance(open_backend(out, "auto", say=said.append), OrtBackend)  # no engines yet: falls back
    assert "lists no TensorRT engines" in said[0]
    # TensorRT 10 builds FP16 from the FP16 graph, which the first export did not write
    with pytest.raises(ExportError, match="builds fp16 engines from segmenter.fp16.onnx, which this model does not"):
        run_export(ExportConfig(run=aux_run, out=out, dynamic_batch="1:2:4", gate="net", onnx=False, trt=True,
                                precision="fp32,fp16", verify_images=2), say=lambda *_: None)
    trt.calls.clear()
    run_export(ExportConfig(run=aux_run, out=out, dynamic_batch="1:2:4", gate="net", trt=True,
                            precision="fp32,fp16", verify_images=2), say=lambda *_: None)
    assert [c[1] for c in trt.calls if c[0] == "build"] == ["segmenter.onnx", "segmenter.fp16.onnx", "labeler.onnx",
                                                             "labeler.fp16.onnx"]
    backend = open_backend(out, "auto")
    assert backend.name == "trt" and backend.precision == "fp32"
    x = frames(3)
    labels, conf = backend.infer(x)
    ref_labels, ref_conf = OrtBackend(out).infer(x)
    assert np.array_equal(labels, ref_labels) and np.abs(conf - ref_conf).max() < 1e-6
    assert open_backend(out, "trt", "fp16").precision == "fp16"
    with pytest.raises(ModelError, match="no int8 labeler engine \\(have: fp16, fp32\\)"):
        open_backend(out, "trt", "int8")
    trt.__version__ = "10.4.0"
    with pytest.raises(ModelError, match="built with TensorRT 10.3.0.26, this machine has 10.4.0 .* --precision fp32"):
        open_backend(out, "trt").infer(x)


# --- bench -------------------------------------------------------------------------------------------

class SlowBackend(Backend):
    """Takes ``seconds`` per call. ``asynchronous``: the call returns at once and the work finishes in
    the background, as GPU work does; only ``synchronize`` waits for it."""

    name = "fake"

    def __init__(self, spec, seconds=0.02, asynchronous=False, oom_above=None):
        super().__init__(spec)
        self.seconds, self.asynchronous, self.oom_above = seconds, asynchronous, oom_above
        self.done = threading.Event()
        self.done.set()

    def _load(self):
        pass

    def _work(self, batch):
        if self.oom_above and len(batch) > self.oom_above:
            raise OutOfMemory(f"out of memory at batch {len(batch)}")
        if self.asynchronous:
            self.done.clear()
            threading.Timer(self.seconds, self.done.set).start()
        else:
            time.sleep(self.seconds)

    def _infer(self, batch):
        self._work(batch)
        return np.zeros(batch.shape[:3], np.uint8), np.ones(batch.shape[:3], np.float32)

    def _segment(self, batch):
        self._work(batch)
        return np.zeros((len(batch), 9, *batch.shape[1:3]), np.float32)

    def synchronize(self):
        self.done.wait()


def test_the_timing_loop_measures_true_speed_including_asynchronous_work(exported):
    spec = read_model(exported)
    x = frames(1)
    slow = SlowBackend(spec)
    secs = measure(lambda: slow.segment(x), slow.timer(), 5, 1, slow.synchronize)
    assert 0.019 <= np.median(secs) < 0.06
    async_ = SlowBackend(spec, asynchronous=True)
    secs = measure(lambda: async_.segment(x), async_.timer(), 5, 1, async_.synchronize)
    assert 0.019 <= np.median(secs) < 0.06
    # the control: a clock that does not synchronise sees almost nothing of the asynchronous work
    naive = measure(lambda: async_.segment(x), WallTimer(lambda: None), 5, 1, async_.synchronize)
    async_.synchronize()
    assert np.median(naive) < 0.01


def test_out_of_memory_halves_the_batch_and_says_so(exported):
    spec = read_model(exported)
    said: list[str] = []
    cfg = BenchConfig(exported, batch="4", iters=2, warmup=0, stages="labeler")
    rows = bench_backend(SlowBackend(spec, 0.001, oom_above=1), "fake", cfg, spec, np.random.default_rng(0),
                         said.append)
    assert [(r["requested_batch"], r["batch"]) for r in rows] == [(4, 1)]
    assert "retrying at batch 2" in said[0] and "retrying at batch 1" in said[1]


def test_bench_json_through_the_cli(exported, tmp_path):
    out = tmp_path / "bench.json"
    r = run_cli("bench", str(exported), "--backend", "ort", "--batch", "1,2", "--iters", "2", "--warmup", "1",
                "--frame-size", "96x128", "--compare", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "added torch (eager FP32) as the baseline" in r.stdout and "GFLOPs per frame" in r.stdout
    d = json.loads(out.read_text())
    assert d["format"] == BENCH_FORMAT and d["format_version"] == 1
    assert set(d) >= {"model", "settings", "system", "results", "compare"}
    assert (d["settings"]["iters"] == 2 and d["settings"]["frame_size"] == [96, 128]
            and "512x1024" in d["settings"]["practice"])
    assert {"cpu", "cores", "versions", "backends"} <= set(d["system"]) and "onnxruntime" in d["system"]["versions"]
    assert len(d["results"]) == 2 * 2 * 3  # backends x batches x stages
    for row in d["results"]:
        assert row["fps"] > 0 and row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
        assert row["fps"] == pytest.approx(row["batch"] * 1000 / row["latency_ms"]["mean"])
    seg = d["model"]["stats"]["segmenter"]
    assert seg["params"] > 2_000_000 and seg["gflops"] > 0
    torch_rows = [c for c in d["compare"] if c["backend"] == "torch"]
    assert len(torch_rows) == 6 and all(c["speedup_vs_torch_eager_fp32"] == 1.0 for c in torch_rows)
    with pytest.raises(ConfigError, match="above this model's maximum batch 4"):
        run_bench(BenchConfig(exported, backends="ort", batch="8"))
    with pytest.raises(ConfigError, match="graphs are static at 64x64"):
        run_bench(BenchConfig(exported, backends="ort", input_size="512x1024"))


def test_runtime_runs_with_torch_blocked(exported):
    code = f"""
import sys
sys.modules["torch"] = None  # any import of torch now fails
import numpy as np
from ssseg.runtime.backends import open_backend
from ssseg.runtime.bench import run_bench
from ssseg.config import BenchConfig
b = open_backend({str(exported)!r}, "auto")
labels, conf = b.infer(np.zeros((2, 64, 64, 3), np.uint8))
run_bench(BenchConfig({str(exported)!r}, backends="ort", iters=1, warmup=0, frame_size="64x64"), say=lambda *_: None)
try:
    open_backend({str(exported)!r}, "torch")
except Exception as e:
    print(type(e).__name__, e)
print(b.name, labels.shape, conf.shape)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "NotAvailableError the torch backend needs PyTorch" in r.stdout
    assert r.stdout.strip().endswith("ort (2, 64, 64) (2, 64, 64)")
