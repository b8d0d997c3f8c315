"""PyTorch module -> clean ONNX file: the TorchScript exporter at an exact opset, onnxslim, the ONNX
checker and the TensorRT operator check, in that order. Any failure stops the export."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import onnx
import torch

from ssseg.errors import ExportError
from ssseg.export.compat import tensorrt_problems


def export_onnx(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
                output_names: list[str], opset: int, dynamic_batch: bool, simplify: bool = True) -> Path:
    """Write ``module`` to ``path`` and return it. The TorchScript exporter is used (not the dynamo one)
    because it emits the requested opset directly; the dynamo exporter starts at opset 18 and cannot
    convert this graph's Pad down to 17, the newest opset TensorRT 8.6 parses."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    axes = {name: {0: "batch"} for name in (*input_names, *output_names)} if dynamic_batch else None
    with warnings.catch_warnings():
        # The exporter warns about its own deprecation and about shape arithmetic it folds into
        # constants (exact here: every spatial size is static).
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(tmp), dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=axes, do_constant_folding=True)
    model = onnx.load(str(tmp))
    tmp.unlink()
    if simplify:
        import onnxslim

        model = onnxslim.slim(model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - the checker raises several types
        raise ExportError(f"the ONNX checker rejects the exported graph ({str(e).splitlines()[0][:200]})", path=path,
                          fix="report this with the run; try --no-simplify to see whether onnxslim caused it") from None
    problems = tensorrt_problems(model)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ExportError(f"graph uses what TensorRT cannot parse: {'; '.join(problems[:3])}{more}", path=path,
                          fix="keep the default --opset 17; report the model change that introduced it")
    model.producer_name, model.producer_version = "ssseg", __import__("ssseg").__version__
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return path


def tensor_specs(path: Path) -> tuple[dict, dict]:
    """{name: {dtype, shape}} of the graph's inputs and outputs, as model.json records them."""
    model = onnx.load(str(path), load_external_data=False)

    def spec(v) -> dict:
        t = v.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        return {"dtype": dtype, "shape": shape}

    return {v.name: spec(v) for v in model.graph.input}, {v.name: spec(v) for v in model.graph.output}
