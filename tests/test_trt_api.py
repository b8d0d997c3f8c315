"""ssseg's TensorRT calls checked against the real Python API of TensorRT 8.6, 10.13 and 11.4.

TensorRT's libraries cannot be installed here, but its Python bindings are small wheels on PyPI, and their
pybind11 module imports once a stand-in ``libnvinfer`` (a few empty C functions, built here with ``cc``)
satisfies the loader. Nothing runs; what the import yields is the exact API: every class, enum member and
method signature. Each TensorRT name ssseg uses, per version branch of ``TrtApi``, must exist there with the
arguments and keywords ssseg passes; every TensorRT member the TensorRT code calls must be in USED (so a new
call is checked too). Wheels are cached in .cache/tensorrt-bindings; without PyPI the test says so and skips."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ssseg.runtime.trt import TrtApi

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "tensorrt-bindings"
WHEELS = {(8, 6, 1): "tensorrt-bindings==8.6.1", (10, 13, 3): "tensorrt-cu12-bindings==10.13.3.9",
          (11, 4, 0): "tensorrt-cu13-bindings==11.4.0.106"}
# the files that call TensorRT (everything else goes through them)
TRT_CODE = [ROOT / "export" / "tensorrt.py", ROOT / "runtime" / "trt.py"]

# what ssseg calls: class -> {member: parameter names after self that ssseg passes, in order (None: an
# attribute or enum member)}; methods ssseg overrides (the calibrator's) are listed with their parameters too
COMMON = {
    "Logger": {"WARNING": None},
    "Builder": {"create_network": ["flags"], "create_builder_config": [], "create_optimization_profile": [],
                "build_serialized_network": ["network", "config"]},
    "OnnxParser": {"parse_from_file": ["model"], "num_errors": None, "get_error": ["index"]},
    "IBuilderConfig": {"set_memory_pool_limit": ["pool", "pool_size"], "set_flag": ["flag"],
                       "add_optimization_profile": ["profile"], "create_timing_cache": ["serialized_timing_cache"],
                       "set_timing_cache": ["cache", "ignore_mismatch"], "get_timing_cache": []},
    "IOptimizationProfile": {"set_shape": ["input", "min", "opt", "max"]},
    "ITimingCache": {"serialize": []},
    "MemoryPoolType": {"WORKSPACE": None},
    "Runtime": {"deserialize_cuda_engine": ["serialized_engine"]},
    "ICudaEngine": {"num_io_tensors": None, "get_tensor_name": ["index"], "get_tensor_mode": ["name"],
                    "get_tensor_dtype": ["name"], "create_execution_context": []},
    "IExecutionContext": {"set_input_shape": ["name", "shape"], "set_tensor_address": ["name", "memory"],
                          "get_tensor_shape": ["name"], "execute_async_v3": ["stream_handle"]},
    "TensorIOMode": {"INPUT": None},
}
IMPLICIT = {  # TrtApi.explicit_precision False (8.6): builder flags and TensorRT's own INT8 calibration
    "NetworkDefinitionCreationFlag": {"EXPLICIT_BATCH": None},
    "BuilderFlag": {"FP16": None, "INT8": None},
    "IBuilderConfig": {"int8_calibrator": None, "set_calibration_profile": ["profile"]},
    "IInt8EntropyCalibrator2": {"get_batch_size": [], "get_batch": ["names"], "read_calibration_cache": [],
                                "write_calibration_cache": ["cache"]},
}
EXPLICIT = {"NetworkDefinitionCreationFlag": {"STRONGLY_TYPED": None}}  # 10.x, 11.x: the graph's own precision
RETURNS = {("IBuilderConfig", "set_timing_cache"): "bool", ("IBuilderConfig", "create_timing_cache"): "ITimingCache"}

STUB = r"""
void* createInferBuilder_INTERNAL(void* l, int v) { return 0; }
void* createInferRefitter_INTERNAL(void* e, void* l, int v) { return 0; }
void* createInferRuntime_INTERNAL(void* l, int v) { return 0; }
void* createNvOnnxParserRefitter_INTERNAL(void* r, void* l, int v) { return 0; }
void* createNvOnnxParser_INTERNAL(void* n, void* l, int v) { return 0; }
void* getBuilderPluginRegistry(int c) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
void* getPluginRegistry(void) { return 0; }
int initLibNvInferPlugins(void* l, const char* n) { return 1; }
/* 8.6 also links the UFF and Caffe parsers */
void* uff(void) __asm__("_ZN11nvuffparser15createUffParserEv");
void* uff(void) { return 0; }
void field(void* s, const char* n, const void* d, int t, int l)
    __asm__("_ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi");
void field(void* s, const char* n, const void* d, int t, int l) {}
void* caffe(void) __asm__("_ZN14nvcaffeparser117createCaffeParserEv");
void* caffe(void) { return 0; }
void shutdown(void) __asm__("_ZN14nvcaffeparser123shutdownProtobufLibraryEv");
void shutdown(void) {}
"""

PROBE = r"""
import importlib.util, inspect, json, re, sys
spec = importlib.util.spec_from_file_location("tensorrt", sys.argv[1])
trt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trt)
api = {}
for name in dir(trt):
    obj = getattr(trt, name)
    if name.startswith("_") or not isinstance(obj, type):
        continue
    members = {}
    for m in dir(obj):
        if m.startswith("_") and m != "__init__":
            continue
        attr = inspect.getattr_static(obj, m)
        doc = (getattr(attr, "__doc__", None) or "").strip().splitlines()
        # pybind11: "name(self: ..., a: T) -> R", or for overloads "name(*args, **kwargs)" then "1. name(...)"
        sigs = [d.strip().split(". ", 1)[-1] for d in doc if re.match(r"^\s*(\d+\. )?%s\(" % m, d)]
        members[m] = [g for g in sigs if "*args" not in g] if callable(attr) else None
    api[name] = members
print(json.dumps(api))
"""


def _wheel(requirement: str) -> Path:
    name, version = requirement.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(CACHE.glob(f"{stem}*.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", py,
           "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64", "--platform",
           "manylinux2014_x86_64", "-d", str(CACHE), "--quiet", requirement]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    found = sorted(CACHE.glob(f"{stem}*.whl"))
    if r.returncode != 0 or not found:
        pytest.skip(f"cannot fetch {requirement} from PyPI (offline?): {(r.stderr.strip().splitlines() or [''])[-1]}")
    return found[0]


@pytest.fixture(scope="module", params=sorted(WHEELS), ids=lambda v: ".".join(map(str, v)))
def trt_api(request, tmp_path_factory) -> tuple[tuple[int, ...], dict]:
    """(version, {class: {member: signature line or None}}) of the real bindings of that version."""
    if sys.platform != "linux" or os.uname().machine != "x86_64" or shutil.which("cc") is None:
        pytest.skip("the TensorRT binding wheels are x86-64 Linux; a C compiler builds the stand-in libnvinfer")
    version = request.param
    work = tmp_path_factory.mktemp(f"trt{version[0]}")
    with zipfile.ZipFile(_wheel(WHEELS[version])) as z:
        so = next(n for n in z.namelist() if re.search(r"tensorrt[^/]*\.so$", n))
        module = Path(z.extract(so, work))
    (work / "stub.c").write_text(STUB)
    for lib in ("libnvinfer", "libnvonnxparser", "libnvinfer_plugin", "libnvparsers"):
        soname = f"{lib}.so.{version[0]}"
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(work / soname), f"-Wl,-soname,{soname}",
                        str(work / "stub.c")], check=True, capture_output=True)
    r = subprocess.run([sys.executable, "-c", PROBE, str(module)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "LD_LIBRARY_PATH": str(work)})
    assert r.returncode == 0, r.stderr[-2000:]
    api = json.loads(r.stdout)
    with zipfile.ZipFile(_wheel(WHEELS[version])) as z:  # the package's Python part: nptype and friends
        init = next(n for n in z.namelist() if n.endswith("/__init__.py") and n.count("/") == 1)
        tree = ast.parse(z.read(init))
    api["<module>"] = {f.name: [f"{f.name}({', '.join(a.arg for a in f.args.args)}) -> object"]
                       for f in tree.body if isinstance(f, ast.FunctionDef)}
    return version, api


def _parameters(signature: str) -> tuple[list[str], str]:
    """'f(self: X, a: int, b: bool = True) -> bool' -> (['a', 'b'], 'bool'); pybind11's overloads use the first."""
    m = re.match(r"\w+\((.*)\)\s*->\s*(.+)$", signature)
    assert m, signature
    params = [p.split(":")[0].strip() for p in re.split(r",\s*(?![^\[]*\])", m.group(1)) if p.strip()]
    return [p for p in params if p != "self"], m.group(2).strip().removeprefix("tensorrt.")


def _expected(version: tuple[int, ...]) -> dict[str, dict]:
    used = {k: dict(v) for k, v in COMMON.items()}
    for cls, members in (EXPLICIT if TrtApi(version).explicit_precision else IMPLICIT).items():
        used.setdefault(cls, {}).update(members)
    return used


def test_every_tensorrt_name_ssseg_uses_exists_with_its_arguments(trt_api):
    version, api = trt_api
    problems = []
    for cls, members in _expected(version).items():
        if cls not in api:
            problems.append(f"trt.{cls} does not exist")
            continue
        for member, params in members.items():
            if member not in api[cls]:
                problems.append(f"trt.{cls}.{member} does not exist")
            elif params is not None:
                fits = [(sig, _parameters(sig)) for sig in api[cls][member]]
                fits = [(sig, ret) for sig, (have, ret) in fits
                        if have[: len(params)] == params and (len(have) == len(params) or "=" in sig)]
                if not fits:
                    problems.append(f"trt.{cls}.{member}({', '.join(params)}): the real one is "
                                    f"{' | '.join(api[cls][member]) or 'not introspectable'}")
                elif (cls, member) in RETURNS and all(ret != RETURNS[(cls, member)] for _, ret in fits):
                    problems.append(f"trt.{cls}.{member} returns {fits[0][1]}, not {RETURNS[(cls, member)]}")
    assert api["<module>"].get("nptype") == ["nptype(trt_type) -> object"]
    assert problems == [], f"TensorRT {'.'.join(map(str, version))}: " + "; ".join(problems)


def test_the_other_branch_is_really_gone_where_trtapi_says(trt_api):
    """TrtApi's version branches match the real bindings: 11.x lacks what the 8.6 path needs."""
    version, api = trt_api
    if version[0] >= 11:
        assert "IInt8EntropyCalibrator2" not in api and "INT8" not in api["BuilderFlag"]
        assert "EXPLICIT_BATCH" not in api["NetworkDefinitionCreationFlag"]
        assert "int8_calibrator" not in api["IBuilderConfig"]
    if version[0] == 8:
        assert "STRONGLY_TYPED" not in api["NetworkDefinitionCreationFlag"]


def test_every_tensorrt_call_in_the_code_is_declared(trt_api):
    """The calls in export/tensorrt.py and runtime/trt.py that name a TensorRT member (``trt.X`` or a method
    TensorRT's classes have) are all in USED, so the check above covers new code too."""
    _, api = trt_api
    declared = {m for members in (*COMMON.values(), *IMPLICIT.values(), *EXPLICIT.values()) for m in members}
    declared |= set(COMMON) | set(IMPLICIT) | set(EXPLICIT) | {"nptype"}
    trt_members = {m for members in api.values() for m in members if not m.startswith("_")} | set(api)
    used = set()
    for path in TRT_CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                used.add(node.func.attr)  # a method call
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt":
                used.add(node.attr)  # trt.X
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "trt":
                used.add(node.attr)  # trt.X.Y
    # calls on Python, numpy and pycuda objects that share a name with a TensorRT member
    ours = {m for t in (list, dict, str, bytes, Path) for m in dir(t)} | {"synchronize", "read_text"}
    missing = sorted((used & trt_members) - declared - ours)
    assert missing == [], f"TensorRT members used but not checked: {missing} (add them to COMMON/IMPLICIT/EXPLICIT)"
