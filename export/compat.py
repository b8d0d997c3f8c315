"""Static check that an ONNX graph is something TensorRT's ONNX parser imports without plugins.

The rules are those of onnx-tensorrt's operator matrix for TensorRT 8.6 (the oldest release ssseg
supports and the last for Pascal cards); 10.x accepts a superset. The allow-list covers the operators
that convolutional segmenters export to, not every operator TensorRT knows: anything else fails the
export, so a model change that introduces one is caught here instead of on a user's GPU.

Q/DQ graphs (``--precision int8``) follow TensorRT's explicit-quantization rules, the same from 8.6 to 11:
QuantizeLinear/DequantizeLinear with constant positive scales and a constant INT8 zero point of 0 (TensorRT
quantizes symmetrically and has no UINT8 Q/DQ), per-tensor or per-channel (``axis``)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TRT86_MAX_OPSET = 17

ALLOWED_OPS = frozenset({
    "Add", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape",
    "Conv", "ConvTranspose", "DequantizeLinear", "Div", "Exp", "Flatten", "Gather", "GlobalAveragePool",
    "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Log", "MaxPool", "Mod", "Mul", "Neg", "Pad", "PRelu",
    "QuantizeLinear", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Shape", "Sigmoid",
    "Slice", "Softmax", "Split", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
})
RESIZE_COORDINATES = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                                "align_corners"})
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_NEAREST = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})
FLOATS = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16})
# Inputs that onnx-tensorrt 8.6 needs as initializers / constants (op -> input index).
CONSTANT_INPUTS = {"Slice": (3,), "Squeeze": (1,), "Unsqueeze": (1,), "ReduceSum": (1,), "Conv": (1,),
                   "ConvTranspose": (1,), "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2)}
QDQ = ("QuantizeLinear", "DequantizeLinear")


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def tensorrt_problems(model: onnx.ModelProto) -> list[str]:
    """Every reason TensorRT 8.6's ONNX parser would reject ``model`` or need a plugin; empty when none."""
    problems = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset > TRT86_MAX_OPSET:
        problems.append(f"opset {opset}: TensorRT 8.6 parses opsets up to {TRT86_MAX_OPSET}")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - unknown domains stop inference; those nodes are reported below
        inferred = model
    types = {v.name: v.type.tensor_type.elem_type
             for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    constants = {t.name for t in model.graph.initializer}
    values = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)
            if node.attribute and node.attribute[0].name == "value":
                values[node.output[0]] = node.attribute[0].t
    for node in model.graph.node:  # quantized weights: DequantizeLinear of a constant is a constant to TensorRT
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            constants.update(node.output)
    for node in model.graph.node:
        where = f"{node.op_type} node {node.name or node.output[0]!r}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain {node.domain!r} needs a TensorRT plugin")
            continue
        if node.op_type not in ALLOWED_OPS:
            problems.append(f"{where}: operator not on the TensorRT allow-list")
            continue
        a = _attrs(node)
        for index in CONSTANT_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index] and node.input[index] not in constants:
                problems.append(f"{where}: input {index} must be a constant for TensorRT's parser")
        if node.op_type == "Resize":
            if _text(a.get("coordinate_transformation_mode", "half_pixel")) not in RESIZE_COORDINATES:
                problems.append(f"{where}: coordinate_transformation_mode "
                                f"{_text(a['coordinate_transformation_mode'])} is not supported by TensorRT")
            if _text(a.get("mode", "nearest")) not in RESIZE_MODES:
                problems.append(f"{where}: mode {_text(a['mode'])} is not supported by TensorRT 8.6")
            if _text(a.get("nearest_mode", "round_prefer_floor")) not in RESIZE_NEAREST:
                problems.append(f"{where}: nearest_mode {_text(a['nearest_mode'])} is not supported by TensorRT")
            if a.get("antialias", 0):
                problems.append(f"{where}: antialias is not supported by TensorRT 8.6")
        elif node.op_type in ("AveragePool", "MaxPool", "Conv", "ConvTranspose"):
            kernel = a.get("kernel_shape")
            if kernel is not None and len(kernel) not in (2, 3):
                problems.append(f"{where}: only 2D and 3D kernels are supported")
            if node.op_type == "ConvTranspose" and a.get("output_shape"):
                problems.append(f"{where}: output_shape is not supported; use pads/output_padding")
        elif node.op_type == "Cast":
            src, dst = types.get(node.input[0]), a.get("to")
            if TensorProto.UINT8 in (src, dst) and not ({src, dst} - {TensorProto.UINT8}) <= FLOATS:
                problems.append(f"{where}: TensorRT 8.6 casts UINT8 only to/from FLOAT or FLOAT16 "
                                f"({TensorProto.DataType.Name(src or 0)} -> {TensorProto.DataType.Name(dst or 0)})")
        elif node.op_type in QDQ:
            problems += _qdq_problems(where, node, values)
        elif node.op_type in ("ArgMax",) and a.get("keepdims", 1) not in (0, 1):
            problems.append(f"{where}: keepdims must be 0 or 1")
    for t in (*model.graph.input, *model.graph.output):
        if t.type.tensor_type.elem_type in (TensorProto.INT64, TensorProto.DOUBLE):
            problems.append(f"graph I/O {t.name!r} is {TensorProto.DataType.Name(t.type.tensor_type.elem_type)}; "
                            f"TensorRT I/O must be float, half, int32, int8, uint8 or bool")
    return problems


def _qdq_problems(where: str, node: onnx.NodeProto, values: dict) -> list[str]:
    scale = values.get(node.input[1]) if len(node.input) > 1 else None
    zero = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    problems = []
    if scale is not None and not (numpy_helper.to_array(scale) > 0).all():
        problems.append(f"{where}: scales must be positive")
    if zero is None:  # an absent zero point means UINT8 in ONNX
        problems.append(f"{where}: needs an INT8 zero point (none means UINT8, which TensorRT cannot quantize to)")
    elif zero.data_type != TensorProto.INT8:
        problems.append(f"{where}: zero point is {TensorProto.DataType.Name(zero.data_type)}; TensorRT needs INT8")
    elif np.any(numpy_helper.to_array(zero) != 0):
        problems.append(f"{where}: zero point must be 0 (TensorRT quantizes symmetrically)")
    return problems
