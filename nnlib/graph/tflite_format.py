"""TFLite flatbuffers in and out of the graph IR, through the `tflite` package's generated readers and
builders (flatbuffers), no hand-written decoding.

Reading: CONV_2D, DEPTHWISE_CONV_2D (multiplier 1), FULLY_CONNECTED, AVERAGE_POOL_2D, MEAN over
height and width, PAD, RESHAPE, SQUEEZE, SOFTMAX, RELU, RELU6, DEQUANTIZE and QUANTIZE, with fused
activations (NONE, RELU, RELU6). Weights are converted to nnlib's layouts (filters OHWI -> (KH, KW,
Cin, Cout), depthwise (1, KH, KW, C) -> (KH, KW, C), fully connected (Cout, Cin) -> (Cin, Cout)).

Quantisation policy (stated here, where the importer applies it): float16 weights (a DEQUANTIZE of a
FLOAT16 constant) and int8/uint8 weights, per tensor or per channel, are dequantised at import to
float32 (value = scale * (q - zero_point)); a bias of int32 likewise with its own scale. Activations
are computed in float32 throughout (the QPUs compute in float): a quantised model runs as its float
equivalent, not bit-exact with an int8 runtime, and QUANTIZE/DEQUANTIZE between activations are
identities.

Writing (`save`): a simplified graph as a float32 .tflite, input NHWC (1, H, W, C), for the CPU
reference runtime (ai-edge-litert) and to test the reader; optionally with float16 weights behind
DEQUANTIZE, the way the TFLite converter writes float16 models, or int8 weights with a scale per
output channel (dynamic-range quantisation), which the reader dequantises.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import reference
from .ir import Graph, ModelError, Node
from .passes import shapes


def _tflite():
    try:
        import flatbuffers
        import tflite
    except ImportError as error:
        raise ModelError("<tflite>", None, None, f"reading TFLite models needs the tflite package ({error}): "
                         "pip install 'vc4kit[models]'") from None
    return tflite, flatbuffers


ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}            # tflite.ActivationFunctionType
DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 9: np.int8, 7: np.int16, 4: np.int64}


def load(path: str | Path) -> Graph:
    source = Path(path).name
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ModelError(source, None, None, f"cannot read the file ({error.strerror})") from None
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(source, None, None, "not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        return from_bytes(data, source)
    except ModelError:
        raise
    except Exception as error:                # a corrupt flatbuffer fails deep inside the reader
        raise ModelError(source, None, None, f"a corrupt or truncated TFLite file ({type(error).__name__})") from None


def from_bytes(data: bytes, source: str = "<tflite>") -> Graph:
    tflite, _ = _tflite()
    model = tflite.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() != 1:
        raise ModelError(source, None, None, f"{model.SubgraphsLength()} subgraphs (one only)")
    sub = model.Subgraphs(0)
    names = {i: sub.Tensors(i).Name().decode() for i in range(sub.TensorsLength())}
    constants: dict[str, np.ndarray] = {}

    def constant(index: int) -> np.ndarray | None:
        """A tensor's constant value as float32 (dequantised: the policy above), or None."""
        tensor = sub.Tensors(index)
        buffer = model.Buffers(tensor.Buffer())
        if buffer is None or buffer.DataLength() == 0:
            return None
        dtype = DTYPES.get(tensor.Type())
        if dtype is None:
            raise ModelError(source, names[index], "tensor", f"tensor type {tensor.Type()} is not supported")
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        value = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype).reshape(shape)
        quantization = tensor.Quantization()
        scaled = quantization is not None and quantization.ScaleLength() > 0
        if dtype in (np.int8, np.uint8, np.int16) or (dtype == np.int32 and scaled):    # weights, biases
            return _dequantize(value, quantization, source, names[index])
        return value if dtype in (np.int32, np.int64) else value.astype(np.float32)     # shapes, paddings

    values = {i: v for i in range(sub.TensorsLength()) if (v := constant(i)) is not None}
    (input_index,) = [int(i) for i in sub.InputsAsNumpy()]
    input_shape = tuple(int(d) for d in sub.Tensors(input_index).ShapeAsNumpy())
    if len(input_shape) != 4 or input_shape[0] != 1:
        raise ModelError(source, names[input_index], "input", f"input of shape {input_shape} (1, H, W, C) only")
    nodes: list[Node] = []
    alias: dict[int, str] = {input_index: names[input_index]}

    def name_of(index: int) -> str:
        if index in alias:
            return alias[index]
        if index in values:
            constants.setdefault(names[index], values[index])
            return names[index]
        raise ModelError(source, names[index], "tensor", "is read before anything computes it")

    for n in range(sub.OperatorsLength()):
        op = sub.Operators(n)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        (out,) = [int(i) for i in op.OutputsAsNumpy()]
        kind = _OP_NAMES.get(builtin, f"builtin operator {builtin}")
        name = names[out]

        def fail(what: str, name=name, kind=kind) -> ModelError:
            return ModelError(source, name, kind, what)

        options = op.BuiltinOptions()
        if builtin in (tflite.BuiltinOperator.DEQUANTIZE, tflite.BuiltinOperator.QUANTIZE):
            if ins[0] in values:                               # float16 / int8 weights: folded at import
                values[out] = values[ins[0]]
            else:
                alias[out] = name_of(ins[0])
            continue
        if builtin in (tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOperator.DEPTHWISE_CONV_2D):
            depthwise = builtin == tflite.BuiltinOperator.DEPTHWISE_CONV_2D
            opt = tflite.DepthwiseConv2DOptions() if depthwise else tflite.Conv2DOptions()
            opt.Init(options.Bytes, options.Pos)
            if opt.StrideH() != opt.StrideW() or opt.DilationHFactor() != 1 or opt.DilationWFactor() != 1:
                raise fail(f"strides ({opt.StrideH()}, {opt.StrideW()}) and dilation "
                           f"({opt.DilationHFactor()}, {opt.DilationWFactor()}): equal strides, no dilation")
            if depthwise and opt.DepthMultiplier() not in (0, 1):
                raise fail(f"depth multiplier {opt.DepthMultiplier()} (1 only)")
            if ins[1] not in values:
                raise fail("weights that are not constants")
            w = values[ins[1]]
            weights = w[0] if depthwise else w.transpose(1, 2, 3, 0)
            attrs = {"stride": opt.StrideH(), "padding": "tf_same" if opt.Padding() == 0 else "valid"}
            node = Node(name, "depthwise" if depthwise else "conv2d", [name_of(ins[0]), names[ins[1]]], attrs, kind)
            constants[names[ins[1]]] = weights.astype(np.float32)
        elif builtin == tflite.BuiltinOperator.FULLY_CONNECTED:
            opt = tflite.FullyConnectedOptions()
            opt.Init(options.Bytes, options.Pos)
            if ins[1] not in values:
                raise fail("weights that are not constants")
            constants[names[ins[1]]] = values[ins[1]].T.astype(np.float32)
            node = Node(name, "matmul", [name_of(ins[0]), names[ins[1]]], {}, kind)
        elif builtin == tflite.BuiltinOperator.AVERAGE_POOL_2D:
            opt = tflite.Pool2DOptions()
            opt.Init(options.Bytes, options.Pos)
            node = Node(name, "avg_pool", [name_of(ins[0])], {
                "ksize": (opt.FilterHeight(), opt.FilterWidth()), "stride": opt.StrideH(),
                "padding": "tf_same" if opt.Padding() == 0 else "valid"}, kind)
        elif builtin == tflite.BuiltinOperator.MEAN:
            axes = tuple(sorted(int(a) for a in np.asarray(values.get(ins[1], [])).reshape(-1)))
            if axes != (1, 2):
                raise fail(f"a mean over axes {axes} (over height and width only)")
            node = Node(name, "global_avg_pool", [name_of(ins[0])], {}, kind)
        elif builtin == tflite.BuiltinOperator.PAD:
            pads = np.asarray(values[ins[1]]).reshape(4, 2)
            if pads[0].any() or pads[3].any():
                raise fail(f"padding {pads.tolist()} of the batch or channels")
            node = Node(name, "pad", [name_of(ins[0])], {"paddings": (int(pads[1, 0]), int(pads[1, 1]),
                                                                       int(pads[2, 0]), int(pads[2, 1]))}, kind)
        elif builtin in (tflite.BuiltinOperator.RESHAPE, tflite.BuiltinOperator.SQUEEZE):
            shape = tuple(int(d) for d in sub.Tensors(out).ShapeAsNumpy())
            node = Node(name, "reshape", [name_of(ins[0])], {"shape": shape[1:] if shape[:1] == (1,) else shape}, kind)
        elif builtin in (tflite.BuiltinOperator.SOFTMAX, tflite.BuiltinOperator.RELU, tflite.BuiltinOperator.RELU6):
            node = Node(name, _OP_NAMES[builtin].lower(), [name_of(ins[0])], {}, kind)
        elif builtin == tflite.BuiltinOperator.ADD:             # a residual connection, or a constant bias
            node = Node(name, "add", [name_of(i) for i in ins[:2]], {}, kind)
        else:
            raise fail(f"op {kind} is not supported")
        activation = _fused_activation(tflite, builtin, options)
        if activation and node.op == "add":
            raise fail("an ADD with a fused activation is not supported")
        bias = ins[2] if len(ins) > 2 and ins[2] >= 0 and node.op in ("conv2d", "depthwise", "matmul") else None
        if bias is not None:
            constants[names[bias]] = values[bias].astype(np.float32)
            node.attrs["bias"] = names[bias]
        if activation not in ACTIVATIONS:
            raise fail(f"fused activation {activation} (none, RELU or RELU6 only)")
        if ACTIVATIONS[activation]:
            node.attrs["activation"] = ACTIVATIONS[activation]
        nodes.append(node)
        alias[out] = name
    outputs = [alias.get(int(i), names[int(i)]) for i in sub.OutputsAsNumpy()]
    return Graph(nodes, constants, {names[input_index]: input_shape[1:]}, outputs, source)


def _dequantize(value: np.ndarray, quantization, source: str, name: str) -> np.ndarray:
    if quantization is None or quantization.ScaleLength() == 0:
        raise ModelError(source, name, "tensor", "an integer tensor without quantisation parameters")
    scale = quantization.ScaleAsNumpy().astype(np.float64)
    zero = quantization.ZeroPointAsNumpy().astype(np.float64) if quantization.ZeroPointLength() else 0.0
    if scale.size > 1:                                    # per channel, along quantized_dimension
        axis = quantization.QuantizedDimension()
        shape = [1] * value.ndim
        shape[axis] = scale.size
        scale = scale.reshape(shape)
        zero = np.asarray(zero).reshape(shape) if np.size(zero) > 1 else zero
    return ((value.astype(np.float64) - zero) * scale).astype(np.float32)


def _fused_activation(tflite, builtin: int, options) -> int:
    table = {tflite.BuiltinOperator.CONV_2D: tflite.Conv2DOptions,
             tflite.BuiltinOperator.DEPTHWISE_CONV_2D: tflite.DepthwiseConv2DOptions,
             tflite.BuiltinOperator.FULLY_CONNECTED: tflite.FullyConnectedOptions,
             tflite.BuiltinOperator.AVERAGE_POOL_2D: tflite.Pool2DOptions,
             tflite.BuiltinOperator.ADD: tflite.AddOptions}
    if builtin not in table or options is None:
        return 0
    opt = table[builtin]()
    opt.Init(options.Bytes, options.Pos)
    return opt.FusedActivationFunction()


_OP_NAMES = {0: "ADD", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED", 1: "AVERAGE_POOL_2D", 40: "MEAN",
             34: "PAD", 22: "RESHAPE", 43: "SQUEEZE", 25: "SOFTMAX", 19: "RELU", 21: "RELU6", 6: "DEQUANTIZE",
             114: "QUANTIZE"}


# ---- writing -------------------------------------------------------------------------------------------

class _Writer:
    """Tensors, buffers and operators of one subgraph, serialised by the tflite builders."""

    def __init__(self, tflite, flatbuffers):
        self.t, self.b = tflite, flatbuffers.Builder(1 << 20)
        self.buffers: list[bytes] = [b""]                   # buffer 0: empty, by convention
        self.tensors: list[tuple[str, tuple[int, ...], int, int]] = []
        self.operators: list[tuple[int, list[int], list[int], int, object]] = []
        self.codes: list[int] = []
        self.quantization: dict[int, tuple[np.ndarray, int]] = {}     # tensor -> (scales, axis)

    def tensor(self, name: str, shape, data: np.ndarray | None = None, dtype: int = 0) -> int:
        buffer = 0
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data).tobytes())
            buffer = len(self.buffers) - 1
        self.tensors.append((name, tuple(int(d) for d in shape), dtype, buffer))
        return len(self.tensors) - 1

    def weights(self, name: str, value: np.ndarray, weights: str, axis: int = 0) -> int:
        """A float32 constant; float16 behind a DEQUANTIZE (how the converter writes float16); or
        int8 with a symmetric scale per channel along `axis` (dynamic-range quantisation)."""
        if weights == "int8":
            moved = np.moveaxis(value, axis, 0).reshape(value.shape[axis], -1)
            scale = np.maximum(np.abs(moved).max(axis=1), np.float32(1e-30)) / np.float32(127)
            shape = [1] * value.ndim
            shape[axis] = -1
            q = np.clip(np.round(value / scale.reshape(shape)), -127, 127).astype(np.int8)
            index = self.tensor(name, value.shape, q, dtype=9)
            self.quantization[index] = (scale.astype(np.float32), axis)
            return index
        if weights != "float16":
            return self.tensor(name, value.shape, value.astype(np.float32))
        half = self.tensor(name + "/fp16", value.shape, value.astype(np.float16), dtype=1)   # float16
        out = self.tensor(name, value.shape)
        self.op(self.t.BuiltinOperator.DEQUANTIZE, [half], [out])
        return out

    def op(self, code: int, ins: list[int], outs: list[int], options=None) -> None:
        if code not in self.codes:
            self.codes.append(code)
        self.operators.append((self.codes.index(code), ins, outs, *(options or (0, None))))

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        t, b = self.t, self.b

        def table_vector(start, offsets) -> int:
            """A vector of tables already built (their offsets), in order."""
            start(b, len(offsets))
            for o in reversed(offsets):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        def int_vector(start, values) -> int:
            start(b, len(values))
            for v in reversed(values):
                b.PrependInt32(v)
            return b.EndVector()

        offsets = []
        for index, ins, outs, kind, build in self.operators:
            ins_v, outs_v = int_vector(t.OperatorStartInputsVector, ins), int_vector(t.OperatorStartOutputsVector, outs)
            options = build(b) if build else None
            t.OperatorStart(b)
            t.OperatorAddOpcodeIndex(b, index)
            t.OperatorAddInputs(b, ins_v)
            t.OperatorAddOutputs(b, outs_v)
            if build:
                t.OperatorAddBuiltinOptionsType(b, kind)
                t.OperatorAddBuiltinOptions(b, options)
            offsets.append(t.OperatorEnd(b))
        operators = table_vector(t.SubGraphStartOperatorsVector, offsets)
        tensor_offsets = []
        for index, (name, shape, dtype, buffer) in enumerate(self.tensors):
            name_s, shape_v = b.CreateString(name), int_vector(t.TensorStartShapeVector, list(shape))
            quantization = None
            if index in self.quantization:
                scales, axis = self.quantization[index]
                scale_v = b.CreateNumpyVector(scales)
                zero_v = b.CreateNumpyVector(np.zeros(len(scales), np.int64))
                t.QuantizationParametersStart(b)
                t.QuantizationParametersAddScale(b, scale_v)
                t.QuantizationParametersAddZeroPoint(b, zero_v)
                t.QuantizationParametersAddQuantizedDimension(b, axis)
                quantization = t.QuantizationParametersEnd(b)
            t.TensorStart(b)
            if quantization is not None:
                t.TensorAddQuantization(b, quantization)
            t.TensorAddShape(b, shape_v)
            t.TensorAddType(b, dtype)
            t.TensorAddBuffer(b, buffer)
            t.TensorAddName(b, name_s)
            tensor_offsets.append(t.TensorEnd(b))
        tensors = table_vector(t.SubGraphStartTensorsVector, tensor_offsets)
        ins_v = int_vector(t.SubGraphStartInputsVector, inputs)
        outs_v = int_vector(t.SubGraphStartOutputsVector, outputs)
        t.SubGraphStart(b)
        t.SubGraphAddTensors(b, tensors)
        t.SubGraphAddOperators(b, operators)
        t.SubGraphAddInputs(b, ins_v)
        t.SubGraphAddOutputs(b, outs_v)
        subgraph = t.SubGraphEnd(b)
        buffer_offsets = []
        for data in self.buffers:
            vector = None
            if data:
                b.StartVector(1, len(data), 16)             # 16-byte aligned, as the runtimes like
                b.head -= len(data)
                b.Bytes[b.head:b.head + len(data)] = data
                vector = b.EndVector()
            t.BufferStart(b)
            if vector is not None:
                t.BufferAddData(b, vector)
            buffer_offsets.append(t.BufferEnd(b))
        code_offsets = []
        for code in self.codes:
            t.OperatorCodeStart(b)
            t.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            t.OperatorCodeAddBuiltinCode(b, code)
            t.OperatorCodeAddVersion(b, 1)
            code_offsets.append(t.OperatorCodeEnd(b))
        vectors = [table_vector(t.ModelStartSubgraphsVector, [subgraph]),
                   table_vector(t.ModelStartBuffersVector, buffer_offsets),
                   table_vector(t.ModelStartOperatorCodesVector, code_offsets)]
        description = b.CreateString("vc4kit")
        t.ModelStart(b)
        t.ModelAddVersion(b, 3)
        t.ModelAddSubgraphs(b, vectors[0])
        t.ModelAddBuffers(b, vectors[1])
        t.ModelAddOperatorCodes(b, vectors[2])
        t.ModelAddDescription(b, description)
        b.Finish(t.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def to_bytes(graph: Graph, weights: str = "float32") -> bytes:
    """A simplified graph as a TFLite model: float32; weights="float16": float16 behind DEQUANTIZE;
    "int8": int8 weights with a scale per output channel (read back dequantised)."""
    if weights not in ("float32", "float16", "int8"):
        raise ValueError(f"weights={weights!r}: 'float32', 'float16' or 'int8'")
    tflite, flatbuffers = _tflite()
    t, w = tflite, _Writer(tflite, flatbuffers)
    sizes = shapes(graph)
    (input_name, (h, width, c)), = graph.inputs.items()

    def batched(shape) -> tuple[int, ...]:
        return (1, *shape)

    ids = {input_name: w.tensor(input_name, (1, h, width, c))}

    def bias(node: Node, channels: int) -> int:
        value = graph.constant(node.attrs["bias"]) if node.attrs.get("bias") else np.zeros(channels, np.float32)
        return w.tensor(node.name + "/bias", value.shape, value.astype(np.float32))

    def activation(node: Node) -> int:
        return {None: 0, "relu": 1, "relu6": 3}[node.attrs.get("activation")]

    for node in graph.nodes:
        x = ids[node.inputs[0]]
        out_shape = sizes[node.name]
        if node.op in ("conv2d", "depthwise"):
            stride, padding = node.attrs.get("stride", 1), node.attrs.get("padding", "tf_same")
            kernel = graph.constant(node.inputs[1])
            if padding not in ("tf_same", "valid"):           # explicit amounts: a PAD, then VALID
                in_h, in_w = sizes[node.inputs[0]][:2]
                top, bottom, left, right = reference.pad_amounts(in_h, in_w, stride, padding, kernel.shape[0])
                pads = w.tensor(node.name + "/paddings", (4, 2),
                                np.array([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32), dtype=2)
                in_shape = sizes[node.inputs[0]]
                padded = w.tensor(node.name + "/padded", (1, in_shape[0] + top + bottom, in_shape[1] + left + right,
                                                          in_shape[2]))
                w.op(t.BuiltinOperator.PAD, [x, pads], [padded])
                x, padding = padded, "valid"
            filt = kernel.transpose(3, 0, 1, 2) if node.op == "conv2d" else kernel[None]
            axis = 0 if node.op == "conv2d" else 3                 # the output channels of OHWI / 1HWC
            ins = [x, w.weights(node.inputs[1], filt, weights, axis), bias(node, out_shape[2])]
            out = w.tensor(node.name, batched(out_shape))
            pad_code = 0 if padding == "tf_same" else 1
            act = activation(node)
            if node.op == "conv2d":
                def build(b, pad=pad_code, s=stride, a=act):
                    t.Conv2DOptionsStart(b)
                    t.Conv2DOptionsAddPadding(b, pad)
                    t.Conv2DOptionsAddStrideW(b, s)
                    t.Conv2DOptionsAddStrideH(b, s)
                    t.Conv2DOptionsAddFusedActivationFunction(b, a)
                    t.Conv2DOptionsAddDilationWFactor(b, 1)
                    t.Conv2DOptionsAddDilationHFactor(b, 1)
                    return t.Conv2DOptionsEnd(b)
                w.op(t.BuiltinOperator.CONV_2D, ins, [out], (t.BuiltinOptions.Conv2DOptions, build))
            else:
                def build(b, pad=pad_code, s=stride, a=act):
                    t.DepthwiseConv2DOptionsStart(b)
                    t.DepthwiseConv2DOptionsAddPadding(b, pad)
                    t.DepthwiseConv2DOptionsAddStrideW(b, s)
                    t.DepthwiseConv2DOptionsAddStrideH(b, s)
                    t.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
                    t.DepthwiseConv2DOptionsAddFusedActivationFunction(b, a)
                    t.DepthwiseConv2DOptionsAddDilationWFactor(b, 1)
                    t.DepthwiseConv2DOptionsAddDilationHFactor(b, 1)
                    return t.DepthwiseConv2DOptionsEnd(b)
                w.op(t.BuiltinOperator.DEPTHWISE_CONV_2D, ins, [out], (t.BuiltinOptions.DepthwiseConv2DOptions, build))
        elif node.op == "matmul":
            matrix = graph.constant(node.inputs[1])
            ins = [x, w.weights(node.inputs[1], matrix.T, weights), bias(node, matrix.shape[1])]
            out = w.tensor(node.name, (1, matrix.shape[1]))
            act = activation(node)

            def build(b, a=act):
                t.FullyConnectedOptionsStart(b)
                t.FullyConnectedOptionsAddFusedActivationFunction(b, a)
                return t.FullyConnectedOptionsEnd(b)
            w.op(t.BuiltinOperator.FULLY_CONNECTED, ins, [out], (t.BuiltinOptions.FullyConnectedOptions, build))
        elif node.op == "global_avg_pool":
            in_h, in_w = sizes[node.inputs[0]][:2]
            out = w.tensor(node.name, (1, 1, 1, out_shape[-1]))

            def build(b, fh=in_h, fw=in_w):
                t.Pool2DOptionsStart(b)
                t.Pool2DOptionsAddPadding(b, 1)
                t.Pool2DOptionsAddStrideW(b, 1)
                t.Pool2DOptionsAddStrideH(b, 1)
                t.Pool2DOptionsAddFilterWidth(b, fw)
                t.Pool2DOptionsAddFilterHeight(b, fh)
                return t.Pool2DOptionsEnd(b)
            w.op(t.BuiltinOperator.AVERAGE_POOL_2D, [x], [out], (t.BuiltinOptions.Pool2DOptions, build))
        elif node.op in ("squeeze", "reshape", "flatten", "identity"):
            shape = batched(out_shape) if len(out_shape) != 1 else (1, out_shape[0])
            target = w.tensor(node.name + "/shape", (len(shape),), np.array(shape, np.int32), dtype=2)
            out = w.tensor(node.name, shape)
            w.op(t.BuiltinOperator.RESHAPE, [x, target], [out])
        elif node.op == "softmax":
            out = w.tensor(node.name, (1, out_shape[-1]))

            def build(b):
                t.SoftmaxOptionsStart(b)
                t.SoftmaxOptionsAddBeta(b, 1.0)
                return t.SoftmaxOptionsEnd(b)
            w.op(t.BuiltinOperator.SOFTMAX, [x], [out], (t.BuiltinOptions.SoftmaxOptions, build))
        elif node.op == "add" and not any(graph.is_constant(i) for i in node.inputs):
            out = w.tensor(node.name, batched(out_shape))
            w.op(t.BuiltinOperator.ADD, [ids[i] for i in node.inputs], [out])
        else:
            raise graph.error(node, f"cannot be written as TFLite ({node.op})")
        ids[node.name] = out
    return w.finish([ids[input_name]], [ids[o] for o in graph.outputs])


def save(graph: Graph, path: str | Path, weights: str = "float32") -> Path:
    Path(path).write_bytes(to_bytes(graph, weights))
    return Path(path)


__all__ = ["load", "from_bytes", "save", "to_bytes"]
