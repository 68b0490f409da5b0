"""The whole-network compiler: a graph (nnlib.graph) becomes ONE program that runs every layer on
the 12 QPUs in ONE submission, the CPU idle meanwhile.

    net = nnlib.compile("mobilenet_v1.pb", drv, weights="float16")
    logits, report = net(image)          # one execute; report.seconds(): the modeled Pi time

Every layer is a plan (Layer below): the tensor layouts it reads and writes, its weights packed for
its kernel (uploaded once, at compile time), and its code segments with the addresses it was given.
The segments follow each other behind all-QPU barriers (chain.py), assembled once; the buffers'
addresses reach the code through each segment's parameter block in the uniform stream, so the same
program runs any number of images: a call writes the image into the input buffer, runs, and reads
the logits.

Kernels per layer:
- conv2d 3x3 reading the model's input (at most 3 channels): computed straight from the image's
  rows (direct.py) where its model beats the gather and GEMM; else, and for any other k x k, the
  im2col gather (im2col.py) into the GEMM's A pack, then the GEMM (matmul.py), the host writing the
  image into a zero-bordered buffer.
- conv2d 1x1 whose only reader is a depthwise layer that writes a pointwise layer's A pack: the two
  as one kernel (expand.py, MobileNet v2's expansion) where its model beats the two apart; the
  expanded tensor then has no buffer.
- conv2d 1x1 and matmul (fully connected): the GEMM, reading A through its uniform stream, k-major
  per tile of pixels (GemmPlan.pack_a). The producer writes that pack itself where it can: a
  depthwise layer (tiles of whole image rows, or of whole 4-pixel iterations within a row), the pool
  (for the FC layer), the host (the model's input); otherwise a gather of each pixel's channels.
- depthwise 3x3: depthwise.py, reading dense rows between zero rows, which a GEMM writes directly
  (exact tiles, the depthwise's pitch; with activations="float16" as float16 pixel pairs, where the
  planner's cost says it pays). At stride 1 the kernel of 8 pixels per iteration, where its
  consumer's tiling loses less than its VDW stores save.
- add of two activations (a residual connection, MobileNet v2): fused into the GEMM that computes
  one of them (a 1x1 convolution or matmul without activation whose only consumer is the add): the
  GEMM's tiles start from the bias plus the other tensor's tile (GemmKernel.residual), read as dense
  rows of pixels; nothing else reads the GEMM's own output.
- global average pool: averaged by the 1x1 convolution it reads where that one's output is one
  tile (GemmKernel.mean: the convolution's output then has no buffer); else pool.py.
Reshape, squeeze, flatten and identity move no data; a softmax at the very end is left to the host
(`Network.probabilities`), after the logits are read.

Buffers follow the cache-staleness rule (DESIGN.md, performance.md §4 "Cache coherency"): a buffer
written by VDW in a submission must not be read through TMU or uniform-cache lines that an earlier
read in the same submission may have left behind. Every kernel here reads through those caches, so
no buffer is written twice in a submission: each tensor has a buffer of its own (MobileNet v1 takes
41 MiB of the 128 MB GPU memory at float32 weights; see plan_buffers). The simulator's strict mode
checks the rule on every run.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import im2col, pool
from .chain import QPUS, Segment, place_chain
from .depthwise import PIXELS, WIDE_PIXELS, DepthwisePlan
from .depthwise import TASK_WORDS as DEPTHWISE_TASK_WORDS
from .direct import DirectConvPlan
from .expand import TASK_WORDS as EXPAND_TASK_WORDS
from .expand import ExpandDepthwisePlan
from .graph import Graph, ModelError, Node, load, simplify
from .graph.passes import shapes as tensor_shapes
from .matmul import LANES, GemmKernel, GemmPlan, distinct_plans, float16_weights, gemm_plans, max_slots, plan_gemm
from .nonfinite import warn_nonfinite
from .reference import pad_amounts
from .tasks import free_all, keep, padded_vector

VIEWS = ("reshape", "squeeze", "flatten", "identity")
WEIGHTS = ("float32", "float16")


@dataclass(frozen=True)
class Layout:
    """Where the pixels of an (H, W, C) activation lie in its buffer: pixel (h, w) starts
    4 * pitch * (lead + h * row + w) bytes in; the buffer holds `pixels` pixels (zero where no
    layer writes: the borders a consumer reads as padding). With `pairs` the values are float16,
    buffer pixels 2i and 2i + 1 in the low and high halves of the words of pair i, which starts
    4 * pitch * i bytes in (a GEMM's output that a depthwise layer reads: half the bytes)."""

    height: int
    width: int
    channels: int
    pitch: int
    row: int
    lead: int = 0
    pixels: int = 0
    pairs: bool = False

    def __post_init__(self) -> None:
        need = self.lead + (self.height - 1) * self.row + self.width
        object.__setattr__(self, "pixels", max(self.pixels, need))
        if self.pairs and (self.lead % 2 or self.row % 2):
            raise ValueError("float16 pairs start every row at a pair")

    @property
    def per_word(self) -> int:
        """Pixels whose values share a word: 2 with pairs, else 1."""
        return 2 if self.pairs else 1

    @property
    def words(self) -> int:
        return -(-self.pixels // self.per_word) * self.pitch

    @property
    def dense(self) -> bool:
        """Rows follow each other with no gap (a pool reads the pixels as one run)."""
        return self.row == self.width

    def indices(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The index, in the buffer's 32-bit words, of every value of an (H, W, C) tensor (with
        pairs: of the word whose half `halves` holds it)."""
        _, _, c = shape
        return (self._pixels(shape)[..., None] // self.per_word) * self.pitch + np.arange(c)

    def halves(self, shape: tuple[int, int, int]) -> np.ndarray:
        """With pairs, which half of its word (0: low, 1: high) holds each value."""
        return np.broadcast_to((self._pixels(shape) % 2)[..., None], shape)

    def _pixels(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The buffer pixel of every (h, w) of the tensor."""
        h, w, _ = shape
        return self.lead + np.arange(h)[:, None] * self.row + np.arange(w)[None, :]

    def values(self, words: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """The (H, W, C) tensor held in the buffer's words, as float32."""
        index = self.indices(shape)
        if not self.pairs:
            return np.asarray(words.view(np.float32)[index])
        bits = (words.view(np.uint32)[index] >> (16 * self.halves(shape)).astype(np.uint32)) & 0xFFFF
        return bits.astype(np.uint16).view(np.float16).astype(np.float32)

    def corners(self, base: int, stride: int, out_h: int, out_w: int, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
        """For each output pixel (row-major), the address of pixel (oh stride, ow stride) + offset
        in a buffer at `base`."""
        assert not self.pairs, "a gather reads float32 pixels"
        oh, ow = np.divmod(np.arange(out_h * out_w, dtype=np.int64), out_w)
        h, w = oh * stride + offset[0], ow * stride + offset[1]
        return base + 4 * self.pitch * (self.lead + h * self.row + w)


@dataclass(frozen=True, eq=False)
class Streams:
    """An input that the host writes in the order its reader's tasks stream it (direct.py:
    DirectConvPlan.input_sources): word i holds value sources[i] of the flattened (H, W, C) image,
    zero where that is -1. A layout, no arithmetic: values that two tasks read are in both streams."""

    sources: np.ndarray
    pairs = False

    @property
    def words(self) -> int:
        return len(self.sources)

    def fill(self, image: np.ndarray) -> np.ndarray:
        """The buffer's words for an image."""
        flat = np.asarray(image, np.float32).reshape(-1)
        return np.where(self.sources >= 0, flat[np.maximum(self.sources, 0)], np.float32(0))

    def values(self, words: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """The (H, W, C) image held in the buffer's words (each value from one of its copies)."""
        out = np.zeros(int(np.prod(shape)), np.float32)
        held = self.sources >= 0
        out[self.sources[held]] = words.view(np.float32)[held]
        return out.reshape(shape)


@dataclass(frozen=True)
class Pack:
    """An activation held as a GEMM's A pack (matmul.GemmPlan.pack_a), written so by its producer."""

    plan: GemmPlan

    @property
    def words(self) -> int:
        return self.plan.pack_bytes // 4


@dataclass
class Tensor:
    """An activation: its shape, its layout once the consumer and producer agree, its buffer."""

    name: str
    shape: tuple[int, int, int]
    layout: Layout | None = None
    array: object = None                      # the GPU buffer

    @property
    def address(self) -> int:
        return self.array.address

    @property
    def start(self) -> int:
        """The bus address of pixel (0, 0) (of the pack, of the streams)."""
        if isinstance(self.layout, (Pack, Streams)):
            return self.address
        return self.address + 4 * self.layout.pitch * (self.layout.lead // self.layout.per_word)


class Layer:
    """One layer's plan: what it reads and writes, its weights, its code. Subclasses fill in."""

    node: Node
    source: Tensor
    output: Tensor

    def request(self, producer: Layer | None) -> Layout | None:
        """The layout this layer needs its input in (None: whatever the producer writes)."""
        return None

    def natural(self) -> Layout:
        """The layout this layer writes when its consumer asks for none."""
        raise NotImplementedError

    def accepts(self, layout: Layout) -> str | None:
        """Why this layer cannot write `layout` (None: it can)."""
        return None

    def check(self, layout: Layout) -> str | None:
        """Why this layer cannot read its input in `layout` (None: it can)."""
        return None

    def upload(self, drv, blocks: list) -> None:
        """Pack and upload the weights, once."""

    def segments(self, drv, blocks: list) -> list[Segment]:
        raise NotImplementedError

    def scratch_bytes(self) -> int:
        """Bytes of the network's scratch area (written, never read) this layer's stores need."""
        return 0

    @property
    def flops(self) -> int:
        return 0

    @property
    def kind(self) -> str:
        return self.node.op


def _activation(graph: Graph, node: Node) -> bool:
    """relu6 (True) or none (False): what the kernels fuse."""
    kind = node.attrs.get("activation")
    if kind not in (None, "relu6"):
        raise graph.error(node, f"activation {kind!r} is not supported by the QPU kernels (relu6 or none)")
    return kind == "relu6"


class GemmLayer(Layer):
    """conv2d (k x k) and matmul: a gather of patches or pixels into the A pack, then the GEMM."""

    def __init__(self, graph: Graph, node: Node, source: Tensor, output: Tensor, halves: int, from_input: bool,
                 producer: Layer | None, qpus: int = QPUS):
        self.node, self.source, self.output, self.halves, self.producer = node, source, output, halves, producer
        self.qpus = qpus
        self.relu6 = _activation(graph, node)
        w = graph.constant(node.inputs[1])
        h, w_, c = source.shape
        if node.op == "matmul":
            self.size, self.stride, self.padding = 1, 1, (0, 0, 0, 0)
            self.flatten = True
            if w.shape[0] != h * w_ * c:
                raise graph.error(node, f"weights {w.shape} do not match the input {source.shape}")
            self.b = w
        else:
            kh, kw, cin, cout = w.shape
            if kh != kw or cin != c:
                raise graph.error(node, f"weights {w.shape}: square kernels over all {c} input channels only")
            self.size, self.stride, self.flatten = kh, node.attrs.get("stride", 1), False
            padding = node.attrs.get("padding", "tf_same")
            self.padding = pad_amounts(h, w_, self.stride, (0, 0, 0, 0) if padding == "valid" else padding, kh)
            if kh > 1 and not from_input:
                raise graph.error(node, f"a {kh}x{kw} convolution that does not read the model's input (the "
                                  "gather needs a zero-bordered input, which only the host writes)")
            if kh == 1 and any(self.padding):
                raise graph.error(node, f"a 1x1 convolution with padding {self.padding}")
            self.b = w.reshape(-1, cout)
        bias = node.attrs.get("bias")
        self.bias = graph.constant(bias) if bias else None
        self.out_h, self.out_w = output.shape[:2]
        self.m, (self.k, self.n) = self.out_h * self.out_w, self.b.shape
        self.from_input = from_input
        self.residual: Tensor | None = None      # a skip connection added in the kernel (_layers)
        self.pooled = False                      # the global average pool that reads it, fused (averaged)
        self.plan: GemmPlan | None = None

    def can_average(self, graph: Graph, pool: Node) -> bool:
        """Whether the kernel can average its own output for `pool`, the one layer that reads it
        (GemmKernel.mean): a 1x1 convolution without a residual whose output is one tile (its
        producer able to write that tile), unplanned yet."""
        allowed = self.direct_rows()
        return (self.size == 1 and not self.flatten and self.residual is None and self.plan is None
                and self.halves <= self.m <= max_slots(False, False) and (not allowed or self.m in allowed)
                and _read_only_by(graph, self.node.name, pool))

    def averaged(self, output: Tensor) -> None:
        """Compute the pool too: the kernel writes the means of its tile, the pool's `output`."""
        self.output, self.pooled = output, True

    @property
    def c_pad(self) -> int:
        """Its output's channels in whole strips (what an FC layer reading its means takes as K)."""
        return -(-self.n // LANES) * LANES

    def direct_rows(self) -> tuple[int, ...]:
        """The tile heights at which the producer can write this layer's A pack itself: a
        depthwise layer (DepthwisePlan.pack_output: whole image rows dividing the image, or whole
        iterations of 4 pixels dividing a row; DepthwisePlan.half_rows: whole half rows), or a pool
        into a fully connected layer (one row, two with float16 weights); none when the input comes
        from elsewhere."""
        averages = isinstance(self.producer, PoolLayer) or isinstance(self.producer, GemmLayer) and self.producer.pooled
        if averages and self.m == 1 and self.source.shape[:2] == (1, 1):
            return (self.halves,)
        if isinstance(self.producer, ExpandDepthwiseLayer) and self.size == 1 and self.stride == 1 \
                and not self.flatten:
            return tuple(self.producer.plan.tile_heights(self.halves, max_slots(False, False)))
        if not isinstance(self.producer, DepthwiseLayer) or self.size != 1 or self.stride != 1 or self.flatten:
            return ()
        # Half rows only for taller tiles than whole rows allow (a 14-wide image: 49 where 28 was the
        # most): between those the cost model cannot tell the cheaper reliably (float16 MobileNet v1
        # measured 1.9 ms slower with 14-row half-row tiles offered to its 28-wide layers).
        return tuple(self.producer.plan.tile_heights(self.halves, max_slots(False, False)))

    def make_plan(self, exact: bool, pairs: bool = False) -> None:
        """The GEMM's tiling (plan_gemm), two choices made by the model's costs on the way:
        - a depthwise producer's wide kernel (DepthwiseLayer.wide), if this GEMM's cheapest tiling
          of the tiles it writes costs less more than the VDW clocks it saves;
        - with `pairs` (its consumer, a depthwise layer, reads float16 pixel pairs) the output as
          pairs, if the cheapest tiling with even tiles costs less more than the SDRAM time of the
          float32 output's second half, written here and read by the consumer (timing.py's port
          rate)."""
        self._plan(exact, False)
        producer = self.producer
        if isinstance(producer, DepthwiseLayer) and producer.wide is not None and self.direct:
            # The wide depthwise kernel's VDW stores take half the engine's time; its tiles within a
            # row come in multiples of its 8 pixels, which may cost this GEMM more.
            narrow = self.plan, self.problem
            saved = producer.narrow.store_clocks() - producer.wide.store_clocks()
            producer.use(producer.wide)
            self._plan(exact, False)
            if not self.direct or self.plan.clocks - narrow[0].clocks >= saved:
                producer.use(producer.narrow)
                (self.plan, self.problem), self.direct = narrow, True          # as planned for the narrow kernel
        allowed = self.direct_rows()                 # with pairs only even tiles: are there any?
        if pairs and self.m % 2 == 0 and (not allowed or any(r % 2 == 0 for r in allowed)):
            single = self.plan, self.problem
            self._plan(exact, True)
            if self.plan.clocks > single[0].clocks + _pairs_saving(self.m, single[0].n_pad):
                self.plan, self.problem = single
        self.use(self.plan)

    def use(self, plan: GemmPlan) -> None:
        """Run with this tiling (the plan and its compiled kernel variant)."""
        self.plan = plan
        self.cfg = GemmKernel(plan.rows, plan.unroll, 4, self.halves, self.bias is not None, self.relu6, plan.overlap,
                              residual=self.residual is not None, pairs=plan.pairs, mean=self.pooled)

    def tilings(self, count: int) -> list[GemmPlan]:
        """The plan and up to count - 1 alternatives, cheapest first by the cost model, that differ
        only in how the tiles are dealt to the QPUs, whether a tile's stores overlap the next tile
        and how far the k-loop is unrolled: the same tile height, A pack, output layout and scratch,
        so that no other layer or buffer changes (what compile(tune=) times). The same list
        whichever of them the layer uses."""
        plan = plan_gemm(**self.problem)             # the cost model's choice (make_plan's)
        layout = (plan.pairs, plan.k_pad, plan.m_pad, plan.exact)
        same = [other for other in gemm_plans(**{**self.problem, "rows": plan.rows})
                if (other.pairs, other.k_pad, other.m_pad, other.exact) == layout]
        return distinct_plans([plan] + same, count, lambda p: (p.unroll, p.grid, p.balanced, p.overlap))

    def _plan(self, exact: bool, pairs: bool) -> None:
        allowed = self.direct_rows()
        residual = self.residual is not None       # its registers hold the bias: fewer accumulators
        # The host packs A itself when it writes the model's input (a layout, no arithmetic).
        host = self.from_input and (self.flatten or self.size == 1 and self.stride == 1)
        self.direct = bool(allowed) or host
        if self.direct and not host:     # K as the producer writes it: whole groups of 16 channels
            self.k = self.producer.c_pad
        # A gathered pack (im2col.groups) or the host's takes tiles of any height.
        self.problem = dict(m=self.m, n=self.n, k=self.k, halves=self.halves, n_qpus=self.qpus, relu6=self.relu6,
                            residual=residual, pairs=pairs,
                            **(dict(rows_allowed=allowed) if self.direct and not host else dict(exact=exact)),
                            **(dict(rows=self.m, overlap=False) if self.pooled else {}))   # one tile, one set
        self.plan = plan_gemm(**self.problem)

    def request(self, producer: Layer | None) -> Layout | Pack | None:
        if self.direct:
            return Pack(self.plan)
        if self.size == 1:
            return None
        top, bottom, left, right = self.padding
        h, w, c = self.source.shape
        row = w + left + right
        return Layout(h, w, c, c, row, top * row + left, (h + top + bottom) * row)

    def natural(self) -> Layout:
        if self.pooled:
            return Layout(1, 1, self.n, self.plan.n_pad, 1, 0, 1)
        return Layout(self.out_h, self.out_w, self.n, self.plan.n_pad, self.out_w, 0, self.plan.m_pad)

    def accepts(self, layout: Layout | Pack) -> str | None:
        if self.pooled:
            return _means_layout_error(layout, self.c_pad)
        if not layout.dense or layout.pitch < self.plan.n_pad:
            return f"the GEMM writes dense rows of pixels {self.plan.n_pad} floats apart"
        if layout.pairs != self.plan.pairs:
            return "the GEMM writes float16 pixel pairs" if self.plan.pairs else "the GEMM writes float32 pixels"
        if not self.plan.exact and self.plan.m_pad > self.m:
            return f"its {self.m} pixels are fewer than a tile of {self.plan.rows} rows"
        return None

    def upload(self, drv, blocks: list) -> None:
        b = np.zeros((self.plan.k, self.n), np.float32)
        b[:len(self.b)] = self.b
        self.b_gpu = keep(blocks, drv.copy(self.plan.pack_b(b, self.cfg.prefetch)))
        self.bias_gpu = keep(blocks, drv.copy(padded_vector(self.bias, self.plan.n_pad))) \
            if self.bias is not None else None
        if self.direct:
            self.pack = self.source.array
        else:
            self.pack = keep(blocks, drv.alloc(self.plan.pack_bytes // 4, np.float32))
            self.pack[:] = 0

    def offsets(self) -> tuple[int, ...]:
        layout = self.source.layout
        if self.flatten:
            h, w, c = self.source.shape
            offsets = [4 * (layout.pitch * (i * layout.row + j) + ch) for i in range(h) for j in range(w)
                       for ch in range(c)]
            return tuple(offsets + [im2col.ZERO] * (self.plan.k_pad - len(offsets)))
        return im2col.patch_offsets(self.size, layout.row * layout.pitch, layout.pitch, self.source.shape[2],
                                    self.plan.k_pad)

    def segments(self, drv, blocks: list) -> list[Segment]:
        return ([] if self.direct else [self._gather(drv, blocks)]) + [self._gemm()]

    def _gather(self, drv, blocks: list) -> Segment:
        plan, layout = self.plan, self.source.layout
        if self.flatten:
            corners = np.full(self.m, self.source.start, np.int64)
        else:   # a window's corner is its top-left pixel, in the zero border for a k x k window
            top, _, left, _ = self.padding
            corners = layout.corners(self.source.address, self.stride, self.out_h, self.out_w, (-top, -left))
        table = keep(blocks, drv.copy(im2col.lane_table(corners, plan)))
        return Segment(im2col.Im2colKernel(self.offsets(), 4 * plan.rows), [],
                       im2col.group_tasks(table.address, self.pack.address, plan), im2col.TASK_WORDS, qpus=self.qpus)

    def scratch_bytes(self) -> int:
        return 0 if self.pooled else self.plan.scratch_bytes(self.output.layout.pitch)

    def residual_check(self, layout: Layout | Pack) -> str | None:
        """Why the residual cannot be read in `layout` (None: it can): the kernel reads a tile's
        rows as its output's, pixel after pixel."""
        if isinstance(layout, Pack) or not layout.dense:
            return "the residual is read as dense rows of pixels, and its layout is not"
        return None

    def _gemm(self) -> Segment:
        plan, out, skip, cfg = self.plan, self.output.layout, self.residual, self.cfg
        skip_pitch = skip.layout.pitch if skip is not None else None
        pitch = None if self.pooled else out.pitch
        tasks = plan.tasks(self.pack.address, self.b_gpu.address, 0 if self.pooled else self.output.start,
                           self.bias_gpu.address if self.bias_gpu is not None else None, pitch=pitch,
                           residual=skip.start if skip is not None else None, residual_pitch=skip_pitch)
        if self.pooled:      # C's word is 4 j: strip j's means are channels j.. of the vector or of the pack
            rows = out.plan.rows if isinstance(out, Pack) else 0
            cfg = replace(cfg, mean_pack_rows=rows)
            for task in (task for tasks_of_qpu in tasks for task in tasks_of_qpu):
                task[2] = self.output.start + task[2] * max(1, rows)
        return Segment(cfg, plan.constants(cfg, self.scratch.address, pitch=pitch, residual_pitch=skip_pitch),
                       tasks, cfg.task_words, dealt=True)

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k

    @property
    def kind(self) -> str:
        if self.node.op == "matmul" or self.m == 1:
            return "fc"
        if self.pooled:
            return "pw+pool"
        return f"conv {self.size}x{self.size}/s{self.stride}" if self.size > 1 else "pw"


def _pairs_saving(pixels: int, pitch: int) -> float:
    """The SDRAM port's clocks that float16 pixel pairs save: the float32 output's second half (2
    bytes a value), written by the producer and read by its consumer (vc4common/timing.py)."""
    from vc4common.timing import param
    return 2 * 2 * pixels * pitch / param("memory_bytes_per_clock")


def _streamed_input(plan: ExpandDepthwisePlan) -> Layout:
    """What the fused kernel streams (expand.py): the input's dense rows, one pixel
    before the image (the first segment's column left of it) and the last row's touch after it."""
    p = plan
    return Layout(p.height, p.width, p.k, p.pitch, p.width, 1, 1 + p.height * p.width + p.slack_pixels)


class DirectConvLayer(Layer):
    """The first convolution (3x3 over an image of at most 3 channels, from the model's input),
    computed straight from the image's rows (direct.py), where its model beats the gather and GEMM."""

    def __init__(self, gemm: GemmLayer, plan: DirectConvPlan):
        self.node, self.source, self.output, self.plan = gemm.node, gemm.source, gemm.output, plan
        self.relu6 = gemm.relu6
        self.w = gemm.b.reshape(gemm.size, gemm.size, plan.k, plan.channels)
        self.w = float16_weights(self.w) if gemm.halves == 2 else self.w       # as the GEMM would multiply
        self.bias, self.qpus, self.c_pad, self.scratch = gemm.bias, plan.qpus, plan.c_pad, None

    @staticmethod
    def of(gemm: GemmLayer, qpus: int) -> DirectConvLayer | None:
        """The direct layer, where it can run and its modeled cost beats the GEMM's tiling plus its
        gather's VDW stores of the patches (vc4common/timing.py); else None."""
        from vc4common.timing import param
        h, w, c = gemm.source.shape
        if not gemm.from_input or gemm.size != 3 or gemm.flatten:
            return None
        plan = DirectConvPlan.best(h, w, c, c, gemm.n, gemm.stride, gemm.padding, qpus, relu6=gemm.relu6,
                                   out_pitch=-(-gemm.n // LANES) * LANES)
        if plan is None:
            return None
        gemm_plan = plan_gemm(gemm.m, gemm.n, gemm.k, gemm.halves, qpus, relu6=gemm.relu6)
        gather = 4 * gemm.m * gemm_plan.k_pad / param("vdw_bytes_per_clock")
        return DirectConvLayer(gemm, plan) if plan.clocks() < gemm_plan.clocks + gather else None

    def offer_pairs(self) -> None:
        """Its consumer, a depthwise layer, reads float16 pixel pairs: written so if the cheapest plan
        for them costs less more than the SDRAM time of the float32 output's second half (as
        GemmLayer.make_plan decides)."""
        p = self.plan
        paired = DirectConvPlan.best(p.height, p.width, p.k, p.pitch, p.channels, p.stride, p.padding, p.qpus,
                                     relu6=p.relu6, out_pitch=p.out_pitch, pairs=True)
        if paired is not None and paired.clocks() < p.clocks() + _pairs_saving(p.out_h * p.out_w, p.c_pad):
            self.plan = paired

    def request(self, producer: Layer | None) -> Streams:
        """From the host: the streams the kernel's tasks read."""
        return Streams(self.plan.input_sources())

    def natural(self) -> Layout:
        p = self.plan
        return Layout(p.out_h, p.out_w, p.channels, p.c_pad, p.out_w, pairs=p.pairs)

    def accepts(self, layout: Layout | Pack) -> str | None:
        kind = "float16 pixel pairs" if self.plan.pairs else "float32 pixels"
        if (isinstance(layout, Pack) or not layout.dense or layout.pairs != self.plan.pairs
                or layout.pitch < self.c_pad):
            return f"the direct convolution writes dense rows of {kind} at least {self.c_pad} floats apart"
        return None

    def upload(self, drv, blocks: list) -> None:
        self.w_gpu = keep(blocks, drv.copy(self.plan.weights_block(self.w, self.bias)))

    def placed(self) -> DirectConvPlan:
        """The plan for the output's layout (its pitch, known once the buffers are planned)."""
        return replace(self.plan, out_pitch=self.output.layout.pitch)

    def scratch_bytes(self) -> int:
        return self.placed().scratch_bytes()

    def segments(self, drv, blocks: list) -> list[Segment]:
        plan = self.placed()
        lists = plan.task_lists(self.source.start, self.w_gpu.address, self.output.start, 0, 0, self.scratch.address)
        return [Segment(plan.kernel(), plan.constants(0, 0), lists, EXPAND_TASK_WORDS, dealt=True)]

    @property
    def flops(self) -> int:
        return self.plan.flops

    @property
    def kind(self) -> str:
        return f"conv 3x3/s{self.plan.stride} direct"


class DepthwiseLayer(Layer):
    def __init__(self, graph: Graph, node: Node, source: Tensor, output: Tensor, min_pitch: int, qpus: int = QPUS,
                 pairs: bool = False):
        self.node, self.source, self.output, self.qpus = node, source, output, qpus
        self.relu6 = _activation(graph, node)
        w = graph.constant(node.inputs[1])
        if w.shape[:2] != (3, 3):
            raise graph.error(node, f"a {w.shape[0]}x{w.shape[1]} depthwise convolution (3x3 only)")
        padding = node.attrs.get("padding", "tf_same")
        stride, padding = node.attrs.get("stride", 1), (0, 0, 0, 0) if padding == "valid" else padding
        try:
            self.plan = DepthwisePlan.of(source.shape, stride, padding, min_pitch, pairs)
            # At stride 1 also the kernel of twice the pixels per iteration and VDW store, on 8
            # QPUs, for rows wider than one narrow iteration (a 7-wide row: one store of 7 pixels
            # where the narrow kernel makes two of 4 and 3): its consumer takes it if the model
            # says it pays (GemmLayer.make_plan).
            self.wide = (DepthwisePlan.of(source.shape, stride, padding, min_pitch, pairs, WIDE_PIXELS)
                         if stride == 1 and output.shape[1] > PIXELS else None)
        except ValueError as error:
            raise graph.error(node, str(error)) from None
        self.narrow, self.all_qpus = self.plan, qpus
        bias = node.attrs.get("bias")
        self.w, self.bias = w.reshape(3, 3, -1), graph.constant(bias) if bias else None
        self.c_pad = self.plan.c_pad
        self.use(self.plan)

    def use(self, plan: DepthwisePlan) -> None:
        """Run with `plan` (self.narrow or self.wide), on as many QPUs as its VPM rows allow."""
        self.plan, self.qpus = plan, min(self.all_qpus, plan.max_qpus())

    def request(self, producer: Layer | None) -> Layout | None:
        p = self.plan
        return Layout(p.height, p.width, p.channels, p.pitch, p.width, p.lead, p.input_pixels, p.pairs)

    def natural(self) -> Layout:
        p = self.plan
        return Layout(p.out_h, p.out_w, p.channels, p.c_pad, p.w_pad, 0, p.out_h * p.w_pad)

    def accepts(self, layout: Layout | Pack) -> str | None:
        if isinstance(layout, Pack):
            why = self._not_whole_rows(layout)
            return None if why is None or self.plan.half_rows(layout.plan.rows) else f"{why}, nor whole half rows"
        if layout.row < self.plan.w_pad or layout.pitch < self.plan.c_pad:
            return f"the depthwise kernel writes rows of {self.plan.w_pad} pixels (whole iterations of 4)"
        return None

    def upload(self, drv, blocks: list) -> None:
        weights, biases = self.plan.pad_weights(self.w, self.bias)
        self.w_gpu, self.b_gpu = keep(blocks, drv.copy(weights)), keep(blocks, drv.copy(biases))

    def segments(self, drv, blocks: list) -> list[Segment]:
        out, p = self.output.layout, self.plan
        if isinstance(out, Pack) and self._not_whole_rows(out):          # two kernels of half rows each
            return [Segment(kernel, constants, tasks, DEPTHWISE_TASK_WORDS, p.half_task_cost, qpus=self.qpus)
                    for kernel, constants, tasks in p.half_segments(
                        self.relu6, out.plan.rows, out.plan.a_tile_bytes, self.source.start, self.w_gpu.address,
                        self.b_gpu.address, self.output.start, self.qpus)]
        if isinstance(out, Pack):
            tile_bytes = out.plan.a_tile_bytes
            pack = p.pack_output(out.plan.rows, tile_bytes)
            return [Segment(p.kernel(self.relu6, pack), p.pack_constants(pack, tile_bytes, self.qpus),
                            p.pack_tasks(self.source.start, self.w_gpu.address, self.b_gpu.address, self.output.start,
                                         pack, tile_bytes, self.qpus), DEPTHWISE_TASK_WORDS, p.task_cost,
                            qpus=self.qpus)]
        y_row_bytes = 4 * out.pitch * out.row
        return [Segment(p.kernel(self.relu6), p.constants(y_row_bytes, self.qpus, out.pitch),
                        p.tasks(self.source.start, self.w_gpu.address, self.b_gpu.address, self.output.start,
                                y_row_bytes, self.qpus), DEPTHWISE_TASK_WORDS, p.task_cost, qpus=self.qpus)]

    def _not_whole_rows(self, pack: Pack) -> str | None:
        """Why one kernel cannot write the pack (DepthwisePlan.pack_output), or None."""
        try:
            self.plan.pack_output(pack.plan.rows, pack.plan.a_tile_bytes)
        except ValueError as error:
            return str(error)
        return None

    @property
    def flops(self) -> int:
        return 2 * 9 * self.plan.out_h * self.plan.out_w * self.plan.channels

    def clocks(self) -> float:
        """A rough modeled cost, for choosing between it and a fused kernel: the layer is
        memory-bound (depthwise.py), so the slower of its VDW stores into a pack (by the wide
        kernel where there is one: its consumer takes it where it pays) and its input and output
        crossing the SDRAM port (vc4common/timing.py)."""
        from vc4common.timing import param
        p = self.plan
        bytes_in = p.input_pixels // (2 if p.pairs else 1) * p.pitch * 4
        bytes_out = 4 * p.out_h * p.out_w * p.c_pad
        stores = min(plan.store_clocks() for plan in (self.narrow, self.wide) if plan is not None)
        return max(stores, (bytes_in + bytes_out) / param("memory_bytes_per_clock"))


class ExpandDepthwiseLayer(Layer):
    """An expansion 1x1 convolution and the depthwise layer that alone reads it, as one kernel
    (expand.py): the expanded tensor is never stored. It writes its consumer GEMM's A pack."""

    def __init__(self, expansion: GemmLayer, depthwise: DepthwiseLayer, plan: ExpandDepthwisePlan):
        self.node, self.expansion, self.depthwise, self.plan = depthwise.node, expansion, depthwise, plan
        self.source, self.output, self.qpus, self.c_pad = expansion.source, depthwise.output, plan.qpus, plan.c_pad
        self.scratch = None

    @staticmethod
    def of(graph: Graph, expansion: Layer | None, depthwise: DepthwiseLayer,
           qpus: int) -> ExpandDepthwiseLayer | None:
        """The fused layer, where the two can be fused and the model's cost says it pays; else None."""
        e = expansion
        if not (isinstance(e, GemmLayer) and e.size == 1 and e.stride == 1 and not e.flatten and e.residual is None
                and [n.name for n in graph.consumers(e.node.name)] == [depthwise.node.name]):
            return None
        users = graph.consumers(depthwise.node.name)
        if len(users) != 1 or users[0].op != "conv2d" or graph.constant(users[0].inputs[1]).shape[:2] != (1, 1):
            return None                           # it writes a pointwise layer's A pack, nothing else
        h, w, k = e.source.shape
        d = depthwise.plan
        plan = ExpandDepthwisePlan.best(h, w, k, -(-k // LANES) * LANES, d.channels, d.stride, d.padding, qpus,
                                        expand_relu6=e.relu6, relu6=depthwise.relu6)
        if plan is None or not plan.tile_heights(1, max_slots(False, False)):
            return None
        fused = ExpandDepthwiseLayer(e, depthwise, plan)
        # Its input as dense rows: the host writes them, a GEMM too (planned for them: _layers),
        # others if they can.
        producer = e.producer
        if not (producer is None or isinstance(producer, GemmLayer) or producer.accepts(fused.request(None)) is None):
            return None
        return fused if plan.clocks() < e.plan.clocks + depthwise.clocks() else None

    def request(self, producer: Layer | None) -> Layout:
        return _streamed_input(self.plan)

    def accepts(self, layout: Layout | Pack) -> str | None:
        if not isinstance(layout, Pack) or layout.plan.rows not in self.plan.tile_heights(1, layout.plan.rows):
            return "the fused expansion and depthwise kernel writes a GEMM's A pack of whole rows or segments"
        return None

    def check(self, layout: Layout) -> str | None:
        wanted = self.request(None)
        if not layout.dense or layout.pitch != wanted.pitch or layout.lead < 1 or layout.pixels < wanted.pixels:
            return "the fused kernel reads dense rows of pixels with room before and after them"
        return None

    def upload(self, drv, blocks: list) -> None:
        e, d = self.expansion, self.depthwise
        b = float16_weights(e.b) if e.halves == 2 else e.b
        self.w_gpu = keep(blocks, drv.copy(self.plan.weights_block(b, e.bias, d.w, d.bias)))

    def scratch_bytes(self) -> int:
        return self.plan.scratch_bytes(self.output.layout.plan.rows)

    def segments(self, drv, blocks: list) -> list[Segment]:
        pack = self.output.layout.plan
        lists = self.plan.task_lists(self.source.start, self.w_gpu.address, self.output.start, pack.rows,
                                     pack.a_tile_bytes, self.scratch.address)
        return [Segment(self.plan.kernel(), self.plan.constants(pack.rows, pack.a_tile_bytes), lists,
                        EXPAND_TASK_WORDS, dealt=True)]

    @property
    def flops(self) -> int:
        return self.plan.flops

    @property
    def kind(self) -> str:
        return "expand+dw"


class PoolLayer(Layer):
    def __init__(self, graph: Graph, node: Node, source: Tensor, output: Tensor, qpus: int = QPUS):
        self.node, self.source, self.output, self.qpus = node, source, output, qpus
        h, w, c = source.shape
        try:
            self.cfg = pool.PoolKernel(h * w)
        except ValueError as error:
            raise graph.error(node, str(error)) from None
        self.c_pad = -(-c // LANES) * LANES

    def natural(self) -> Layout:
        return Layout(1, 1, self.source.shape[2], self.c_pad, 1, 0, 1)

    def request(self, producer: Layer | None) -> Layout | None:
        """From the host: pixels c_pad floats apart (the lanes read 16 channels of one pixel)."""
        h, w, c = self.source.shape
        return Layout(h, w, c, self.c_pad, w) if producer is None else None

    def accepts(self, layout: Layout | Pack) -> str | None:
        return _means_layout_error(layout, self.c_pad)

    def check(self, layout: Layout) -> str | None:
        return None if layout.dense else "the pool reads the pixels as one run, and its input has gaps between rows"

    def segments(self, drv, blocks: list) -> list[Segment]:
        layout = self.source.layout
        scale = struct.unpack("<I", struct.pack("<f", 1.0 / self.cfg.pixels))[0]
        out = self.output.layout
        rows = out.plan.rows if isinstance(out, Pack) else 0
        step = 4 * LANES * max(1, rows)                  # a group's means: 16 words, or 16 k-rows
        tasks = [[self.source.start + 64 * g, self.output.start + step * g] for g in range(self.c_pad // LANES)]
        return [Segment(pool.PoolKernel(self.cfg.pixels, rows), [4 * layout.pitch, scale], tasks, pool.TASK_WORDS,
                        qpus=self.qpus)]

    @property
    def kind(self) -> str:
        return "pool"


def _layers(graph: Graph, halves: int, qpus: int = QPUS, pairs: bool = False, fuse: bool = True) -> tuple[
        dict[str, Tensor], list[Layer], str, bool, dict[str, str]]:
    """The layers of a simplified graph, in order, with their tensors; the tensor the network
    returns; whether a softmax follows it (left to the host); the tensor each view names. With
    `pairs` a GEMM that a depthwise layer reads may write float16 pixel pairs (GemmLayer.make_plan);
    with `fuse` a 1x1 convolution and the depthwise layer that alone reads it may run as one kernel
    (ExpandDepthwiseLayer.of)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise graph.error(None, f"one input and one output (this one has {len(graph.inputs)} and "
                          f"{len(graph.outputs)})")
    shapes = tensor_shapes(graph)
    (input_name,) = graph.inputs
    tensors: dict[str, Tensor] = {}

    def tensor(name: str) -> Tensor:
        if name not in tensors:
            shape = tuple(shapes[name])
            shape = (1, 1, shape[0]) if len(shape) == 1 else shape
            if len(shape) != 3:
                raise graph.error(None, f"tensor {name!r} of shape {shapes[name]} (H, W, C) or (C,) only")
            tensors[name] = Tensor(name, shape)
        return tensors[name]

    alias: dict[str, str] = {input_name: input_name}
    tensor(input_name)
    layers: list[Layer] = []
    producers: dict[str, Layer] = {}
    output, softmax = graph.outputs[0], False
    for node in graph.nodes:
        if node.op == "softmax" and node.name == output:
            output, softmax = node.inputs[0], True
            continue
        sources = [i for i in node.inputs if not graph.is_constant(i)]
        if node.op == "add" and len(sources) == 2:
            alias[node.name] = _fuse_residual(graph, node, [alias.get(i, i) for i in sources], producers, tensor)
            continue
        if len(sources) != 1:
            raise graph.error(node, f"{len(sources)} activation inputs (the compiler runs chains of layers)")
        if sources[0] not in alias:
            raise graph.error(node, f"input {sources[0]!r} is not computed on the GPU")
        source_name = alias[sources[0]]
        if node.op in VIEWS:
            alias[node.name] = source_name
            continue
        if any(source_name in (layer.source.name,) for layer in layers):
            raise graph.error(node, f"tensor {source_name!r} feeds two layers (branches are not supported yet)")
        source, out = tensor(source_name), tensor(node.name)
        producer = producers.get(source_name)
        if node.op in ("conv2d", "matmul"):
            layer: Layer = GemmLayer(graph, node, source, out, halves, source_name == input_name, producer, qpus)
            layer = DirectConvLayer.of(layer, qpus) or layer
        elif node.op == "depthwise":
            min_pitch, pairs_in = 0, False
            if isinstance(producer, GemmLayer):            # it writes straight into the depthwise's rows
                producer.make_plan(exact=True, pairs=pairs and producer.residual is None and source.shape[1] % 2 == 0)
                min_pitch, pairs_in = producer.plan.n_pad, producer.plan.pairs
            elif isinstance(producer, DirectConvLayer):
                if pairs and source.shape[1] % 2 == 0:
                    producer.offer_pairs()
                min_pitch, pairs_in = producer.c_pad, producer.plan.pairs
            layer = DepthwiseLayer(graph, node, source, out, min_pitch, qpus, pairs_in)
            fused = ExpandDepthwiseLayer.of(graph, producer, layer, qpus) if fuse else None
            if fused is not None:                    # the expanded tensor is never stored
                layers.remove(producer)
                del tensors[source_name]
                layer = fused
                upstream = producer.producer
                if isinstance(upstream, GemmLayer) and upstream.plan is None:
                    upstream.make_plan(exact=True)   # it writes the fused kernel's rows, no more
        elif node.op == "global_avg_pool":
            if fuse and isinstance(producer, GemmLayer) and producer.can_average(graph, node):
                producer.averaged(out)               # its output is never stored
                del tensors[source_name]
                producers[node.name] = producer
                alias[node.name] = node.name
                continue
            layer = PoolLayer(graph, node, source, out, qpus)
        else:
            raise graph.error(node, f"op {node.op!r} is not supported by the QPU compiler")
        layers.append(layer)
        producers[node.name] = layer
        alias[node.name] = node.name
    output = alias.get(output, output)
    if output not in producers:
        raise graph.error(None, f"the output {graph.outputs[0]!r} is not computed by a layer")
    for layer in layers:
        if isinstance(layer, GemmLayer) and layer.plan is None:
            layer.make_plan(exact=False)
    return tensors, layers, output, softmax, alias


def _means_layout_error(layout: Layout | Pack, channels: int) -> str | None:
    """Why a pool's means (pool.means_store, by the pool or a GEMM that averages its tile) cannot be
    written in `layout`, or None: a vector, or a pack of one tile of at least `channels` k-rows."""
    if isinstance(layout, Pack) and (layout.plan.m_pad != layout.plan.rows or layout.plan.k < channels):
        return "the means go into a pack of one tile"
    return None


def _read_only_by(graph: Graph, name: str, reader: Node) -> bool:
    """Whether `reader` is the one node that reads tensor `name`, directly or through views."""
    users = graph.consumers(name)
    return len(users) == 1 and (users[0] is reader or users[0].op in VIEWS and _read_only_by(graph, users[0].name,
                                                                                              reader))


def _fuse_residual(graph: Graph, node: Node, sources: list[str], producers: dict[str, Layer], tensor) -> str:
    """An add of two activations given to the GEMM that computes one of them (see the module's
    docstring); the tensor the add's output is."""
    for mine, other in (sources, sources[::-1]):
        layer = producers.get(mine)
        if (isinstance(layer, GemmLayer) and layer.residual is None and not layer.relu6 and
                [n.name for n in graph.consumers(layer.node.name)] == [node.name] and other in producers):
            if tensor(other).shape != layer.output.shape:
                raise graph.error(node, f"adds {tensor(other).shape} to {layer.output.shape}")
            assert layer.plan is None, "a GEMM is planned before its consumers are known"
            layer.residual = tensor(other)
            return mine
    raise graph.error(node, "an add of two activations runs only fused into the GEMM that computes one of them "
                      "(a 1x1 convolution or matmul without activation, read by nothing else)")


def plan_buffers(tensors: dict[str, Tensor], layers: list[Layer], input_name: str) -> None:
    """Each tensor's layout: what its consumer asks for, which the producer must be able to write;
    else what the producer writes naturally. Then every buffer is distinct (the staleness rule
    above: no buffer is written after anything read it in the same submission)."""
    producer = {layer.output.name: layer for layer in layers}
    consumer = {layer.source.name: layer for layer in layers}
    for name, tensor in tensors.items():
        maker, user = producer.get(name), consumer.get(name)
        wanted = user.request(maker) if user else None
        if wanted is None:
            if maker is None:
                h, w, c = tensor.shape
                wanted = Layout(h, w, c, c, w)
            else:
                wanted = maker.natural()
        elif maker is not None:
            why = maker.accepts(wanted)
            if why:
                raise ModelError("<graph>", user.node.name, user.node.op,
                                 f"its input from {maker.node.name!r} cannot be laid out as it needs: {why}")
        tensor.layout = wanted
        why = user.check(wanted) if user else None
        if why:
            raise ModelError("<graph>", user.node.name, user.node.op, why)
    for layer in layers:                 # a residual is read as many rows as the GEMM's tiles cover
        if isinstance(layer, GemmLayer) and layer.residual is not None:
            skip = layer.residual
            why = layer.residual_check(skip.layout)
            if why:
                raise ModelError("<graph>", layer.node.name, layer.node.op, why)
            skip.layout = replace(skip.layout, pixels=max(skip.layout.pixels, skip.layout.lead + layer.plan.m_pad))


def run_alone(drv, layer: Layer, timeout: float = 1.0):
    """One layer's segments as a submission of their own, on the network's buffers: the report."""
    blocks: list = []
    try:
        code = place_chain(drv, layer.segments(drv, blocks), blocks)
        return drv.execute(code, None, n_qpus=QPUS, timeout=timeout)
    finally:
        free_all(drv, blocks)


def tune_layers(drv, layers: list[Layer], count: int) -> None:
    """Each GEMM's fastest of its `count` tilings (GemmLayer.tilings), each run on its own on the
    backend (modeled on the simulator, measured on a Pi), as an auto-tuner would: the cost model
    does not see everything the timing does (the L2 thrashing when A's stream and B outgrow it)."""
    for layer in layers:
        if not isinstance(layer, GemmLayer):
            continue
        best = None
        for plan in layer.tilings(count):
            layer.use(plan)
            cycles = _placed_runs(drv, layer)
            if best is None or cycles < best[0]:          # ties: the cost model's order
                best = (cycles, plan)
        layer.use(best[1])


# Where tune_layers places a layer's run (bytes of GPU memory taken first): its code and task
# tables then lie elsewhere relative to its buffers. In the timing model a pointwise layer whose B
# about fills the V3D's L2 takes up to 1.4x as long as the sets of their lines change, and the
# network's own placement is one more such draw (BENCHMARKS.md, twelfth session): the tuner keeps
# the tiling of the fewest cycles on average over these, not the luckiest.
TUNING_PLACEMENTS = (0, 10 * 1024, 21 * 1024)


def _placed_runs(drv, layer: Layer) -> float:
    """The layer's mean cycles, run alone once after each of TUNING_PLACEMENTS."""
    total = 0
    for offset in TUNING_PLACEMENTS:
        pad = drv.alloc(offset // 4, np.float32) if offset else None
        try:
            total += run_alone(drv, layer).cycles
        finally:
            if pad is not None:
                drv.free(pad)
    return total / len(TUNING_PLACEMENTS)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


@dataclass
class LayerTime:
    """One layer's line in a profile: its modeled time from a run of its own."""

    name: str
    kind: str
    shape: tuple[int, int, int]
    flops: int
    report: object


@dataclass
class Network:
    """A compiled network: its weights and buffers in GPU memory, its one program. Call it."""

    drv: object
    graph: Graph
    layers: list[Layer]
    tensors: dict[str, Tensor]
    input: Tensor
    output: Tensor
    softmax: bool
    weights: str
    alias: dict[str, str]                     # a view's name -> the tensor it shows
    blocks: list = field(default_factory=list)
    code: object = None
    timeout: float = 1.0

    def __call__(self, image):
        """logits (the output tensor, float32), report: one execute."""
        self.load(image)
        report = self.drv.execute(self.code, None, n_qpus=QPUS, timeout=self.timeout)
        return self.read(), report

    def load(self, image) -> None:
        image = np.asarray(image, np.float32)
        if image.shape != self.input.shape:
            raise ValueError(f"the network takes an image of shape {self.input.shape}, not {image.shape}")
        warn_nonfinite(f"{self.graph.source}: the input", **{self.input.name: image})
        layout = self.input.layout
        if isinstance(layout, Pack):                 # a GEMM reads the input: packed as its uniforms read it
            np.asarray(self.input.array).reshape(-1)[:] = layout.plan.pack_a(image.reshape(layout.plan.m, -1))
            return
        if isinstance(layout, Streams):
            np.asarray(self.input.array).reshape(-1)[:] = layout.fill(image)
            return
        np.asarray(self.input.array).reshape(-1)[layout.indices(self.input.shape)] = image

    def read(self) -> np.ndarray:
        """The output tensor of the last run."""
        out = self.activation(self.output.name)
        return out.reshape(-1) if out.shape[:2] == (1, 1) else out

    def activation(self, name: str) -> np.ndarray:
        """Any tensor of the last run, (H, W, C), from its buffer: every layer's output stays in a
        buffer of its own (the staleness rule), so a run can be checked layer by layer."""
        tensor = self.tensors.get(self.alias.get(name, name))
        if tensor is None:
            raise KeyError(f"{name!r}: no such tensor in the network, or one it never stores (a 1x1 convolution "
                           "run fused with the depthwise layer that reads it, expand.py, or with the average pool "
                           "that reads it, matmul.GemmKernel.mean)")
        h, w, c = tensor.shape
        words = np.asarray(tensor.array).reshape(-1)
        if isinstance(tensor.layout, Pack):         # per tile: k-rows of `rows` words
            plan = tensor.layout.plan
            tiles = np.stack([words[t * plan.a_tile_bytes // 4:][:plan.k * plan.rows]
                              for t in range(plan.m_pad // plan.rows)])
            rows = tiles.reshape(len(tiles), plan.k, plan.rows).transpose(0, 2, 1)
            return np.array(rows.reshape(-1, plan.k)[:h * w, :c]).reshape(h, w, c)
        return tensor.layout.values(words, tensor.shape)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The softmax the model ends with (on the host, after the run), or the logits as they are."""
        return softmax(logits) if self.softmax else logits

    def profile(self, image) -> list[LayerTime]:
        """Each layer run on its own (one submission per layer, on the same buffers): its modeled
        time, for the per-layer table. A diagnostic: a real inference is one submission (__call__)."""
        self.load(image)
        return [LayerTime(layer.node.name, layer.kind, layer.output.shape, layer.flops,
                          run_alone(self.drv, layer, self.timeout)) for layer in self.layers]

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    def close(self) -> None:
        blocks, self.blocks = self.blocks, []
        free_all(self.drv, blocks)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def compile(model, drv, weights: str = "float32", outputs: list[str] | None = None,  # noqa: A001
            qpus: int = QPUS, activations: str = "float32", fuse: bool = True, tune: int = 0) -> Network:
    """A model (a path to .pb / .onnx / .tflite, or a Graph) compiled for the QPUs: weights uploaded,
    buffers placed, one program assembled. Errors in the model are raised (ModelError) before
    anything is allocated; anything allocated is freed if a later step fails. `qpus` (1 to 12)
    limits the QPUs that get work; the program runs on all 12. activations="float16" stores the
    outputs of GEMMs that depthwise layers read as float16 (rounded to nearest, below 2^-14 to
    zero: semantics.md §5.3) where the model says it pays; every other tensor stays float32.
    fuse=False runs every 1x1 convolution apart from the depthwise layer that reads it (by default
    the two run as one kernel where the model says that pays: expand.py) and every global average
    pool apart from the 1x1 convolution it reads (by default that kernel averages its own output
    where its output is one tile: matmul.GemmKernel.mean). tune=N: each GEMM layer
    keeps the fastest of its N cheapest tilings that change no other layer (tune_layers: each run
    on its own at compile time; about a second each on the simulator)."""
    if tune < 0:
        raise ValueError(f"tune={tune}: the number of tilings to time per GEMM layer (0: the cost model's choice)")
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r}: 'float32' or 'float16'")
    if activations not in WEIGHTS:
        raise ValueError(f"activations={activations!r}: 'float32' or 'float16'")
    if not 1 <= qpus <= QPUS:
        raise ValueError(f"qpus={qpus}: 1 to {QPUS}")
    graph = model if isinstance(model, Graph) else load(Path(model), outputs)
    warn_nonfinite(f"{graph.source}: the weights", **graph.constants)
    simplify(graph)
    tensors, layers, output, softmax, alias = _layers(graph, 2 if weights == "float16" else 1, qpus,
                                                      activations == "float16", fuse)
    (input_name,) = graph.inputs
    try:
        plan_buffers(tensors, layers, input_name)
    except ModelError as error:
        raise ModelError(graph.source, error.node, error.op, error.what) from None
    net = Network(drv, graph, layers, tensors, tensors[input_name], tensors[output], softmax, weights, alias)
    try:
        for tensor in tensors.values():
            tensor.array = keep(net.blocks, drv.alloc(tensor.layout.words, np.float32))
            tensor.array[:] = 0                   # the borders stay zero: no layer writes them
        scratch_bytes = max([64] + [layer.scratch_bytes() for layer in layers])
        scratch = keep(net.blocks, drv.alloc(scratch_bytes // 4, np.float32))
        for layer in layers:
            layer.scratch = scratch
            layer.upload(drv, net.blocks)
        if tune > 1:
            tune_layers(drv, layers, tune)
        segments: list[Segment] = [segment for layer in layers for segment in layer.segments(drv, net.blocks)]
        net.code = place_chain(drv, segments, net.blocks)
        net.timeout = 1.0
    except BaseException:
        net.close()
        raise
    return net


__all__ = ["Layout", "Network", "compile", "plan_buffers", "tune_layers"]
