"""Static int8 for ONNX Runtime that runs integer MatMuls: calibrated scales, then the QDQ graph
rewritten so no fake quantisation is left for the session to undo.

Why the rewrite. ``onnxruntime.quantization.quantize_static`` writes a QDQ graph (QuantizeLinear ->
DequantizeLinear pairs around every quantised tensor) and leaves it to the session's optimizer to
fuse the pairs into integer kernels. On ONNX Runtime 1.32's CPU provider it does not: a constant
int8 weight behind a DequantizeLinear becomes ``MatMulNBits`` (8-bit weight-only: the weights are
dequantised and the product is fp32), and every other Q -> DQ pair runs as two elementwise ops.
Profiled on the demo's 3-layer SST-2 student (batch 32 x 128, 1 thread, AMX Xeon): MatMulNBits
65% of the time, the graph 0.48x the dynamic int8 one's throughput. So, after calibration:

1. each MatMul whose input is Q -> DQ of an activation and whose weight is DQ of an int8
   initializer becomes one ``com.microsoft.MatMulIntegerToFloat`` (uint8 activations at their fixed
   calibrated scale x int8 weights per output channel, fp32 out), with the bias Add folded in
   where the MatMul's only consumer adds a 1-D constant;
2. the Q -> DQ pairs left on other tensors (MatMul outputs, residuals) are removed: those ops are
   fp32 anyway, and the fake quantisation only cost time and accuracy.

What is left is the graph dynamic int8 runs minus its per-batch range computation. Because every
scale is fixed, a sentence's logits do not depend on the other sentences in its batch or on
their padding (:func:`alembert.export.auto` records it as ``batch_invariant``), which dynamic
int8, with one activation scale per tensor, padding included, cannot promise.

Calibration needs the graph's tensors typed: ``quantize_static`` only quantises tensors whose
type it knows, and ONNX shape inference stops at onnxruntime's fused operators (``BiasGelu``), so
without :func:`alembert.export.graph.quantiser_input`'s hints only the first layer was quantised.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from alembert.errors import AlembertError
from alembert.export.graph import quantiser_input

DESCRIPTION = (
    "static; per-channel int8 weight MatMuls run as integer MatMuls, uint8 activations at fixed scales "
    "calibrated (min/max) on {texts} training texts; batch-invariant"
)


def calibrated_qdq(src: Path, dst: Path, batches: list[dict[str, np.ndarray]], typed: bool = True) -> None:
    """onnxruntime's ``quantize_static`` QDQ graph of ``src`` in ``dst``: per-channel symmetric int8
    weights, uint8 activations with min/max ranges over ``batches``, on every MatMul. ``typed``: the
    fused operators' outputs typed first (:func:`quantiser_input`); False reproduces the graph this
    variant was built from before (only the first layer's activations quantised), for the profile."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)

    with quantiser_input(src, dst.with_name(dst.stem + "-clean.onnx"), typed) as clean:
        quantize_static(
            clean,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["MatMul"],
            extra_options={
                "DefaultTensorType": onnx.TensorProto.FLOAT,
                "WeightSymmetric": True,
                "ActivationSymmetric": False,
            },
        )


def quantize_static_int8(src: Path, dst: Path, batches: Iterable[dict[str, np.ndarray]]) -> None:
    """Calibrate ``src``'s MatMul inputs on ``batches`` (tokenised training texts), quantise, and
    write the integer-MatMul graph to ``dst``."""
    import onnx

    batches = list(batches)
    if not batches:
        raise AlembertError("no training texts to calibrate static quantisation with")
    qdq = dst.with_name(dst.stem + "-qdq.onnx")
    try:
        calibrated_qdq(src, qdq, batches)
        model = onnx.load(qdq)
        integer_matmuls(model)
        onnx.save(model, dst)
    finally:
        qdq.unlink(missing_ok=True)


def integer_matmuls(model) -> int:
    """Rewrite the QDQ ``model`` (an ``onnx.ModelProto``) in place as described above; returns how
    many MatMuls now run on integers."""
    from onnx import helper

    g = model.graph
    weights = {t.name: t for t in g.initializer}
    outputs = {o.name for o in g.output}
    producer = {o: n for n in g.node for o in n.output}

    def quantised_activation(name: str):
        """The DQ node reading a Q node's output, if ``name`` is one."""
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        q = producer.get(dq.input[0])
        return dq if q is not None and q.op_type == "QuantizeLinear" else None

    def int8_weight(name: str):
        dq = producer.get(name)
        return dq if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in weights else None

    targets = {
        id(n): (quantised_activation(n.input[0]), int8_weight(n.input[1]))
        for n in g.node
        if n.op_type == "MatMul" and quantised_activation(n.input[0]) and int8_weight(n.input[1])
    }
    # 2. fake quantisation on float paths: read the tensor before its Q -> DQ pair instead (the
    # integer MatMuls read the Q output itself)
    bypass = {
        n.output[0]: producer[n.input[0]].input[0]
        for n in g.node
        if n.op_type == "DequantizeLinear" and quantised_activation(n.output[0])
    }
    for n in g.node:
        if id(n) not in targets:
            for k, name in enumerate(n.input):
                if name in bypass and name not in outputs:
                    n.input[k] = bypass[name]
    consumers = collections.defaultdict(list)
    for n in g.node:
        for name in n.input:
            consumers[name].append(n)
    # 1. integer MatMuls (+ the bias Add)
    nodes, folded = [], set()
    for n in g.node:
        if id(n) in folded:
            continue
        if id(n) not in targets:
            nodes.append(n)
            continue
        a, w = targets[id(n)]
        inputs = [a.input[0], w.input[0], a.input[1], w.input[1], _at(a.input, 2), _at(w.input, 2)]
        out = list(n.output)
        after = consumers[n.output[0]]
        if len(after) == 1 and after[0].op_type == "Add" and n.output[0] not in outputs:
            bias = [i for i in after[0].input if i != n.output[0]]
            if len(bias) == 1 and bias[0] in weights and len(weights[bias[0]].dims) == 1:
                inputs.append(bias[0])
                out = list(after[0].output)
                folded.add(id(after[0]))
        nodes.append(
            helper.make_node("MatMulIntegerToFloat", inputs, out, name=f"{n.name}_int8", domain="com.microsoft")
        )
    # what nothing reads any more (the bypassed pairs, the weights' DQ nodes)
    while True:
        read = {i for n in nodes for i in n.input} | outputs
        live = [n for n in nodes if any(o in read for o in n.output)]
        if len(live) == len(nodes):
            break
        nodes = live
    del g.node[:]
    g.node.extend(nodes)
    read = {i for n in nodes for i in n.input}
    live_weights = [t for t in g.initializer if t.name in read]
    del g.initializer[:]
    g.initializer.extend(live_weights)
    del g.value_info[:]  # hints for tensors that no longer exist
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(targets)


def _at(names, i: int) -> str:
    return names[i] if len(names) > i else ""
