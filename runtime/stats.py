"""Parameters and multiply-accumulates of an exported graph, read from the ONNX file itself (no torch),
so ``ssseg bench`` can relate FPS to a machine's peak on deployment machines too. Needs the ``onnx``
package; counts convolutions and transposed convolutions, which are all but a rounding error here."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def graph_stats(path: Path) -> dict | None:
    """{"params", "macs"} of one frame (batch dimension taken as 1), or None without the onnx package."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        return None
    model = shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True)  # sizes computed from Shape ops
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    params = int(sum(a.size for a in inits.values() if np.issubdtype(a.dtype, np.floating)))

    def shape(name: str) -> list[int] | None:
        """Static shape with the batch as 1; None when any other dimension is unknown."""
        for v in (*model.graph.value_info, *model.graph.output, *model.graph.input):
            if v.name == name:
                dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
                return [1, *dims[1:]] if dims and all(dims[1:]) else None
        return None

    macs = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or node.input[1] not in inits:
            continue
        w = inits[node.input[1]].shape  # Conv: [Cout, Cin/g, kh, kw]; ConvTranspose: [Cin, Cout/g, kh, kw]
        if node.op_type == "Conv":
            known = shape(node.output[0])
        else:
            known = shape(node.input[0])
        if known is None:
            return {"params": params, "macs": None}  # a partial count would mislead
        macs += int(np.prod(known)) * int(np.prod(w[1:]))
    return {"params": params, "macs": macs}
