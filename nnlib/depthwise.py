"""3x3 depthwise convolution on up to 12 QPUs, bias and ReLU6 fused.

NHWC float32. The 16 lanes hold 16 channels, so one input vector x[h, w, c:c + 16] is one 64-byte
line, read by a TMU. A task is every F-th output row of one 16-channel group: the QPU loads the
group's 9 weight vectors and its bias into registers, then walks each row 4 output pixels at a time.
An iteration loads each input vector of its window once (3 rows of 6 columns at stride 1, of 9 at
stride 2) and adds every vector's products to the sums of the pixels it touches; the sums go
through the QPU's own 4 VPM rows to memory by one VDW store. The TMU requests run 4 per TMU ahead of
use, across iterations, so the memory latency of one window hides behind the arithmetic of the one
before. The input is dense rows between zero rows (DepthwisePlan), which a producing GEMM writes as
its rows come: the first and last iteration of a row skip the loads beyond its ends, which is the
zero border at its sides. The output goes out as NHWC rows, or (PackOutput) straight into the next
pointwise layer's A pack, transposed by the DMA engine. The layer is memory-bound: a pixel needs
9 fmul + 9 fadd for 64 bytes out and 64 (stride 1) or 256 (stride 2) bytes in, and the QPUs outrun
the DMA and SDRAM rates (performance.md §4). Two variants ease them:
- float16 input (DepthwisePlan.pairs): a GEMM wrote two pixels to a word, so a load brings two
  columns of the window and the r4 unpack turns each half into float32 as the fmul reads it;
- at stride 1, 8 output pixels per iteration on 8 QPUs (WIDE_PIXELS), so that a VDW store into a
  pack moves 8-word memory rows, not 4-word ones that take the engine as long.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from qpuasm import isa
from qpuasm.builtins import dma_h32, dma_v32, h32, vdw_setup_0, vdw_setup_1, vpm_setup
from vc4common import host

from . import reference
from .tasks import ALONE, VDW_ROW, VPM_ROW, Scope, branch_at_end, table_prologue, vector_loads

LANES = isa.LANES
MAX_QPUS = host.QPUS
TAPS = 9
PIXELS = 4                                    # output pixels per loop iteration = VPM rows per QPU
# Or twice as many on at most 8 QPUs (8 x 8 of the VPM's 64 rows): each VDW store then takes 8 words
# per memory row where 4 took as long (timing.py dma_row_clocks: a row costs at least 8 clocks), so
# the one VDW engine, which bounds a stride-1 layer into a pack, stores twice the pixels per clock.
WIDE_PIXELS = 8
VPM_ROWS = 64                                  # the user window: 64 rows x 16 words (semantics.md §8.3)
TMU_DEPTH = 4                                 # requests in flight per TMU (more is unreliable, semantics.md §8.2)
TASK_WORDS = 5                                # [input, weights, bias, output address, output rows]

# Regfile A: the pixel sums, the bias, the input row pointers, the task's state and the constants.
# Regfile B: the weights, the column offsets and the per-iteration steps. A product instruction
# then reads a sum from A and a weight from B, one read port each.
RA_SUM = [f"ra{p}" for p in range(WIDE_PIXELS)]
RA_BIAS = "ra28"
RA_ROW = ["ra25", "ra26", "ra27"]
RA_ROW_START, RA_TASK_POINTER, RA_TASKS_LEFT, RA_OUT, RA_COUNT, RA_ROWS = "ra8", "ra9", "ra10", "ra11", "ra12", "ra13"
RA_ROW_BYTES, RA_PIXEL_BYTES, RA_ITERATIONS, RA_VDW_STRIDE = "ra15", "ra16", "ra17", "ra18"
RA_ROW_STEP, RA_OUT_GAP, RA_VPM_SETUP, RA_VDW_SETUP, RA_W = "ra19", "ra20", "ra21", "ra22", "ra23"
RB_WEIGHT = [f"rb{t}" for t in range(TAPS)]
RB_STEP, RB_OUT_STEP, RB_NEXT_TILE = "rb30", "rb31", "rb28"
# Pack tiles of several iterations within a row: the iterations left in the current tile, and a
# tile's iterations (the loop runs one iteration, so that its code fits the 4 KB instruction cache).
RA_TILE_LEFT, RA_TILE_ITERATIONS = "ra14", "ra24"


def window_columns(stride: int, pixels: int = PIXELS) -> int:
    """Input columns under one iteration's output pixels."""
    return (pixels - 1) * stride + 3


def window_loads(stride: int, pairs: bool = False, shift: int = 0, pixels: int = PIXELS) -> int:
    """Input vectors across one row of the window: its columns, or with float16 pairs the pairs
    that hold them, the window starting `shift` columns early so that it starts a pair."""
    columns = window_columns(stride, pixels)
    return -(-(columns + shift) // 2) if pairs else columns


def pixels_error(pixels: int, stride: int) -> str | None:
    """Why a kernel cannot take `pixels` output pixels per iteration (None: it can): the wide one's
    column offsets fill regfile B at stride 1 already."""
    if pixels == PIXELS or pixels == WIDE_PIXELS and stride == 1:
        return None
    return f"{pixels} pixels per iteration: {PIXELS}, or {WIDE_PIXELS} at stride 1"


def iteration_loads(stride: int, pairs: bool = False, pixels: int = PIXELS) -> int:
    """Input vectors an iteration moves on by: its pixels * stride columns, or half as many pairs."""
    return pixels * stride // (2 if pairs else 1)


def rb_column(c: int) -> str:
    """The register holding c input pixels' bytes (columns of this and the next iteration)."""
    return f"rb{TAPS + c}"


@dataclass(frozen=True)
class Load:
    row: int                                  # kh: input row of the window
    column: int                               # input column (or float16 pair) of the window
    products: tuple[tuple[int, int, int], ...]    # (output pixel, kw, half) of each product, in issue order


def load_order(stride: int, pairs: bool = False, shift: int = 0, pixels: int = PIXELS) -> list[Load]:
    """The window's input vectors in the order the kernel loads them, each with the pixels it feeds.
    With float16 pairs a vector holds two columns, 2c + half of a window starting `shift` columns
    before the float32 one's. Greedy, so that no two products in a row add to the same sum (a
    regfile value written by one instruction is not readable by the next, qpu-isa.md §16 rule 1)."""

    def feeds(c: int) -> list[tuple[int, int, int]]:
        columns = [(2 * c + h - shift, h) for h in (0, 1)] if pairs else [(c, 0)]
        return [(p, col - p * stride, h) for col, h in columns for p in range(pixels) if 0 <= col - p * stride < 3]

    remaining = [(kh, c) for kh in range(3) for c in range(window_loads(stride, pairs, shift, pixels))]
    order: list[Load] = []
    last = None
    while remaining:
        candidates = [(kh, c, feeds(c)) for kh, c in remaining]
        kh, c, products = next((x for x in candidates if any(p != last for p, _, _ in x[2])), candidates[0])
        remaining.remove((kh, c))
        arranged = _alternate(products, last)
        order.append(Load(kh, c, tuple(arranged)))
        last = arranged[-1][0] if arranged else last
    return order


def _alternate(products: list[tuple[int, int, int]], last: int | None) -> list[tuple[int, int, int]]:
    """The products in an order where consecutive ones feed different sums as far as they can:
    each time one of those left with the most, other than the sum just fed."""
    left, out = sorted(products, reverse=True), []
    while left:
        counts = {p: sum(q == p for q, _, _ in left) for p, _, _ in left}
        pick = max((x for x in left if x[0] != last), key=lambda x: counts[x[0]], default=left[0])
        left.remove(pick)
        out.append(pick)
        last = pick[0]
    return out


@dataclass(frozen=True)
class PackOutput:
    """The output written as a GEMM's A pack (matmul.GemmPlan.pack_a) instead of NHWC rows: per
    tile of `rows` pixels, k-major, a k-row of `rows` words. A VDW store in vertical mode turns the
    QPU's 4 VPM rows (4 pixels, 16 channels each) into 16 memory rows of 4 words, one per channel,
    `rows` words apart (semantics.md §8.5: memory row r from VPM column X + r): the transpose the
    GEMM needs, done by the DMA engine."""

    rows: int
    last_pixels: int                          # pixels of a row's last iteration that are in the image
    # Tiles narrower than the image (rows < width): each holds rows / 4 iterations, and after the
    # last of them the output moves on by tile_step bytes more, to the next tile's first k-row.
    tile_iterations: int = 0                  # 0: a tile is whole image rows
    tile_step: int = 0


@dataclass(frozen=True)
class DepthwiseKernel:
    """What one compiled variant bakes in: the stride, ReLU6, the iterations of a row, and the row's
    ends: in the first iteration the window's columns before `left` lie left of the image, in the
    last those from `right_limit` on lie right of it (the input is dense rows, no side borders)."""

    stride: int = 1
    relu6: bool = True
    iterations: int = 1
    left: int = 1
    right_limit: int = 3
    pack: PackOutput | None = None            # None: NHWC rows; else straight into a GEMM's A pack
    pairs: bool = False                       # the input as float16 pixel pairs (network.Layout.pairs)
    shift: int = 0                            # with pairs: the window starts this many columns early
    pixels: int = PIXELS                      # output pixels per iteration: PIXELS or WIDE_PIXELS

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError("a row has at least one iteration")
        if self.shift not in ((0, 1) if self.pairs else (0,)):
            raise ValueError("shift: 0 or 1, and only with pairs")
        if pixels_error(self.pixels, self.stride):
            raise ValueError(pixels_error(self.pixels, self.stride))

    def tile_iterations(self) -> int:
        """Iterations of a pack tile narrower than a row; 0 when tiles are whole rows (or NHWC)."""
        return self.pack.tile_iterations if self.pack is not None else 0

    def out_step(self, iteration: int) -> str:
        """How the output moves on after an iteration: to the next pixels, to the next pack tile
        after every iteration (tiles of one iteration), or counted at run time (tiles of several:
        one loop body serves every iteration, whichever tile it ends). The row's last iteration
        never ends a tile: the row's step follows."""
        tile = self.tile_iterations()
        if iteration + 1 == self.iterations or tile == 0:
            return RB_OUT_STEP
        return RB_NEXT_TILE if tile == 1 else RA_TILE_LEFT

    def depth(self, iteration: int) -> int:
        """The pixels an iteration stores: all of them, but the last of a row into a pack stores
        only those in the image (the pack has no room for the rest)."""
        if self.pack is not None and iteration == self.iterations - 1:
            return self.pack.last_pixels
        return self.pixels

    def used(self, iteration: int):
        """Whether window column `column` of iteration `iteration` (0 .. iterations - 1) lies in the
        image; `left` and `right_limit` count the window's columns (with pairs: 2 c + half)."""
        first, last = iteration == 0, iteration == self.iterations - 1
        return lambda column: (not first or column >= self.left) and (not last or column < self.right_limit)

    def column(self, load: Load, half: int) -> int:
        """The window column of a load's half."""
        return 2 * load.column + half if self.pairs else load.column

    def unpack(self, half: int) -> str:
        """How the fmul reads r4: a float32 vector as it is, a pair's half through the r4 unpack
        (float16 -> float32, semantics.md §5.2)."""
        return (".16a", ".16b")[half] if self.pairs else ""

    def source(self, scope: Scope = ALONE) -> str:
        return kernel_source(self, scope)


class _Requests:
    """The TMU requests of one row, in load order across iterations: load n of an iteration goes to
    TMU n % 2, at most TMU_DEPTH outstanding on each."""

    def __init__(self, order: list[Load], step: int):
        self.order, self.step = order, step          # step: input vectors from one iteration to the next
        self.outstanding: deque[tuple[int, int]] = deque()    # (iteration, load) requested, not popped
        self.next = (0, 0)

    def tmu(self, n: int) -> int:
        return n % 2

    def issue(self, last_iteration: int) -> list[str]:
        """Requests while a TMU slot is free, up to the end of iteration `last_iteration`."""
        lines = []
        while self.next[0] <= last_iteration:
            iteration, n = self.next
            tmu = self.tmu(n)
            if sum(self.tmu(m) == tmu for _, m in self.outstanding) >= TMU_DEPTH:
                break
            load = self.order[n]
            column = load.column + iteration * self.step
            lines.append(f"add t{tmu}s, {RA_ROW[load.row]}, {rb_column(column)}")
            self.outstanding.append(self.next)
            self.next = (iteration, n + 1) if n + 1 < len(self.order) else (iteration + 1, 0)
        return lines

    def pop(self, n: int) -> str:
        assert self.outstanding.popleft() == (0, n), "a load is popped before it is requested"
        return f"ldtmu{self.tmu(n)}"

    def next_iteration(self) -> None:
        """Renumber: the next iteration's requests become this one's."""
        assert all(i == 1 for i, _ in self.outstanding) and self.next[0] == 1
        self.outstanding = deque((0, n) for _, n in self.outstanding)
        self.next = (0, self.next[1])


def _body(cfg: DepthwiseKernel, order: list[Load], requests: _Requests, more: bool, used, depth: int,
          out_step: str = RB_OUT_STEP) -> list[str]:
    """One iteration: load 0 already popped into r4; the products, ReLU6, the VPM writes and the
    VDW store. With `more` it also requests the next iteration's first loads. `used(load)` says
    whether a load's vector lies in the image: a load beyond the row's ends (the first and the last
    iteration) is popped but feeds nothing, which is the zero border (the input has none at its
    sides). A product reads its window column's vector, with pairs through the r4 unpack of its half."""
    lines: list[str] = []
    started: set[int] = set()
    pending = written = None                  # the pixel whose product is in r1; whose sum was just written

    def add() -> str:
        nonlocal pending, written
        if pending is None:
            return "nop"
        if written == pending:
            lines.append("nop")
        text = (f"fadd {RA_SUM[pending]}, {RA_SUM[pending]}, r1" if pending in started
                else f"fadd {RA_SUM[pending]}, r1, {RA_BIAS}")
        started.add(pending)
        return text

    for n, load in enumerate(order):
        pop = f"; {requests.pop(n + 1)}" if n + 1 < len(order) else ""
        products = [(p, kw, h) for p, kw, h in load.products if used(cfg.column(load, h))]
        if not products:
            if pop or pending is not None:
                lines.append(f"{add()}; nop{pop}")
                written, pending = pending, None
        else:
            for j, (p, kw, h) in enumerate(products):
                signal = pop if j + 1 == len(products) else ""
                lines.append(f"{add()}; fmul r1, r4{cfg.unpack(h)}, {RB_WEIGHT[3 * load.row + kw]}{signal}")
                written, pending = pending, p
        issued = requests.issue(1 if more else 0)
        lines += issued
        if issued:
            written = None
    if pending is not None:
        lines.append(add())
    # A pixel that no load reaches (beyond the row's end) is stored as its bias: defined, unused.
    lines += [f"mov {RA_SUM[p]}, {RA_BIAS}" for p in range(cfg.pixels) if p not in started]
    lines += ["mov -, vw_wait", f"mov vw_setup, {RA_VPM_SETUP}"]
    for p in range(cfg.pixels):
        lines += [f"fmax r2, {RA_SUM[p]}, 0", "fmin vpm, r2, r3"] if cfg.relu6 else [f"mov vpm, {RA_SUM[p]}"]
    if cfg.pack is None:
        lines += [f"mov vw_setup, {RA_VDW_SETUP}", f"mov vw_setup, {RA_VDW_STRIDE}",
                  f"add {RA_OUT}, {RA_OUT}, {RB_OUT_STEP}; mov vw_addr, {RA_OUT}"]
        return lines
    if depth == cfg.pixels:
        setup = [f"mov vw_setup, {RA_VDW_SETUP}", f"mov vw_setup, {RA_VDW_STRIDE}"]
    else:
        shorter = vdw_setup_0(LANES, depth, 0) - vdw_setup_0(LANES, cfg.pixels, 0)
        setup = [f"mov r0, {shorter}", f"add vw_setup, {RA_VDW_SETUP}, r0",
                 f"mov vw_setup, {vdw_setup_1(4 * (cfg.pack.rows - depth))}"]
    lines += setup + [f"mov vw_addr, {RA_OUT}"]
    if out_step == RA_TILE_LEFT:              # the next pixels, or the next tile's when this one ends
        lines += [f"mov r0, {RB_OUT_STEP}", f"sub.setf {RA_TILE_LEFT}, {RA_TILE_LEFT}, 1",
                  f"mov.ifz r0, {RB_NEXT_TILE}; mov.ifz {RA_TILE_LEFT}, {RA_TILE_ITERATIONS}",
                  f"add {RA_OUT}, {RA_OUT}, r0"]
    else:
        lines.append(f"add {RA_OUT}, {RA_OUT}, {out_step}")
    return lines


def kernel_source(cfg: DepthwiseKernel, scope: Scope = ALONE) -> str:
    """Uniforms: input row bytes, input pixel bytes, iterations per row - 2, the VDW stride (output
    pixel bytes - 64), the input and output steps per iteration, the input step per output row of a
    task, the output's gap between a task's rows, then the task table (tasks.py). A task: [address
    of the top-left input pixel of its first row's window + 64 * group, weights (3, 3, C) + 64 *
    group, bias + 64 * group, output row address + 64 * group, output rows]."""
    order = load_order(cfg.stride, cfg.pairs, cfg.shift, cfg.pixels)
    step = iteration_loads(cfg.stride, cfg.pairs, cfg.pixels)
    columns = window_loads(cfg.stride, cfg.pairs, cfg.shift, cfg.pixels) + step
    pixels = cfg.pixels
    # NHWC: 4 memory rows (pixels) of 16 words from VPM rows; a pack: 16 (channels) of 4 from columns.
    store_setup = (vdw_setup_0(pixels, 16, dma_h32(0, 0)) if cfg.pack is None
                   else vdw_setup_0(LANES, pixels, dma_v32(0, 0)))
    lines: list[str] = []
    emit = lines.append
    emit(f"""
        mov {RA_ROW_BYTES}, unif
        mov {RA_PIXEL_BYTES}, unif
        mov {RA_ITERATIONS}, unif
        mov {RA_VDW_STRIDE}, unif
        mov {RB_STEP}, unif
        mov {RB_OUT_STEP}, unif
        mov {RA_ROW_STEP}, unif
        mov {RA_OUT_GAP}, unif""")
    emit(table_prologue(RA_TASK_POINTER, RA_TASKS_LEFT, scope=scope, between=f"""        mov r0, {pixels * VPM_ROW}
        mul24 r2, r1, r0
        mov r0, {vpm_setup(0, 1, h32(0))}"""))
    emit(f"""        add {RA_VPM_SETUP}, r0, r2
        mov r0, {pixels * VDW_ROW}
        mul24 r2, r1, r0
        mov r0, {store_setup}
        add {RA_VDW_SETUP}, r0, r2
        mov r0, vdw_setup_1(0)
        add {RA_VDW_STRIDE}, {RA_VDW_STRIDE}, r0
        mov r0, {RA_PIXEL_BYTES}
        mov r1, 0""")
    for c in range(columns):                                          # the column offsets c * pixel bytes
        emit(f"        add r1, r1, r0; mov {rb_column(c)}, r1")
    if cfg.pack is not None:
        emit(f"        mov {RB_NEXT_TILE}, {4 * pixels + cfg.pack.tile_step}")
    if cfg.tile_iterations() > 1:
        emit(f"        mov {RA_TILE_ITERATIONS}, {cfg.tile_iterations()}")
    emit(f"""        mov r3, 6.0
:{scope('task')}
        mov unif_addr, {RA_TASK_POINTER}
        shl r2, elem_num, 2
        mov r0, 8
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0
        mov {RA_ROW_START}, unif
        mov {RA_W}, unif
        add t0s, unif, r2
        mov {RA_OUT}, unif
        mov {RA_ROWS}, unif
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0
        mov r0, 4
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0
        mov r0, {RA_PIXEL_BYTES}""")
    # The nine weight vectors (w[kh, kw, group] at (3 kh + kw) * C * 4) by TMU1; the bias,
    # requested above by TMU0.
    emit(f"        add r1, {RA_W}, r2")
    loads, popped = vector_loads(RB_WEIGHT, 1, TMU_DEPTH)
    emit("\n".join(f"        {line}" for line in loads))
    emit(f"""        {popped}; ldtmu0
        mov {RA_BIAS}, r4
        mov r1, {RA_ROW_START}
        add {RA_ROW_START}, r1, r2
:{scope('row')}
        mov r0, {RA_ROW_BYTES}
        mov r1, {RA_ROW_START}
        add r1, r1, r0; mov {RA_ROW[0]}, r1
        add r1, r1, r0; mov {RA_ROW[1]}, r1
        mov {RA_ROW[2]}, r1
        mov {RA_COUNT}, {RA_ITERATIONS}""")
    if cfg.tile_iterations() > 1:
        emit(f"        mov {RA_TILE_LEFT}, {RA_TILE_ITERATIONS}")
    # The row's first requests; then its iterations: the first, the middle ones in a loop, the
    # last (the first and the last skip what lies beyond the row's ends). Each but the last also
    # requests the next iteration's first loads; the row pointers step between iterations.
    requests = _Requests(order, step)
    first = requests.issue(0)
    ahead = len(first)
    lines += [f"        {line}" for line in first + [f"nop; {requests.pop(0)}"]]
    steps = [f"add {RA_ROW[kh]}, {RA_ROW[kh]}, {RB_STEP}" for kh in range(3)]

    def iteration(index: int) -> list[str]:
        requests = _Requests(order, step)
        requests.issue(0)
        requests.pop(0)
        more = index + 1 < cfg.iterations
        body = _body(cfg, order, requests, more, cfg.used(index), cfg.depth(index), cfg.out_step(index))
        if more:
            requests.next_iteration()
            assert len(requests.outstanding) == ahead, "an iteration must leave the requests as the row's start does"
            return body + [steps[0], steps[1], f"{steps[2]}; nop; {requests.pop(0)}"]
        assert not requests.outstanding
        return body

    lines += [f"        {line}" for line in iteration(0)]
    if cfg.iterations > 2:
        middle = iteration(1)
        loop = branch_at_end(middle[:-3] + [f"sub.setf {RA_COUNT}, {RA_COUNT}, 1"] + middle[-3:],
                             f"brr.anynz -, r:{scope('pixels')}")
        emit(f":{scope('pixels')}")
        lines += [f"        {line}" for line in loop]
    if cfg.iterations > 1:
        lines += [f"        {line}" for line in iteration(cfg.iterations - 1)]
    # The task's next output row: the window moves down F rows, the output skips the rows of other
    # tasks.
    emit(f"""        sub.setf {RA_ROWS}, {RA_ROWS}, 1
        mov r0, {RA_ROW_STEP}
        add {RA_ROW_START}, {RA_ROW_START}, r0
        mov r0, {RA_OUT_GAP}
        brr.anynz -, r:{scope('row')}
        add {RA_OUT}, {RA_OUT}, r0
        nop
        nop
        sub.setf {RA_TASKS_LEFT}, {RA_TASKS_LEFT}, 1
        brr.anynz -, r:{scope('task')}
        nop
        nop
        nop
""")
    emit(scope.end())
    return "\n".join(lines)



@dataclass(frozen=True)
class DepthwisePlan:
    """The sizes of one layer as the kernel sees them. The input is dense rows of `width` pixels,
    `pitch` floats apart, with `top` zero rows above and `bottom` below (the kernel itself skips
    what lies beyond a row's ends: no zero columns, so a producing GEMM writes its rows as they
    come); the output is out_h x out_w, computed w_pad wide (whole loop iterations)."""

    height: int
    width: int
    channels: int
    stride: int
    padding: tuple[int, int, int, int]
    min_pitch: int = 0                        # a producer's row width (a GEMM's n_pad), if wider
    # The input as float16 pixel pairs (network.Layout.pairs): pixels 2i and 2i + 1 of the buffer in
    # the halves of one word per channel, so a 64-byte line holds 16 channels of two pixels and a
    # load brings two columns of the window (half the bytes of float32). Rows of an even width.
    pairs: bool = False
    pixels: int = PIXELS                      # output pixels per iteration (DepthwiseKernel.pixels)

    @classmethod
    def of(cls, shape: tuple[int, int, int], stride: int, padding: reference.Padding,
           min_pitch: int = 0, pairs: bool = False, pixels: int = PIXELS) -> DepthwisePlan:
        if stride not in (1, 2):
            raise ValueError(f"stride {stride}: 1 or 2")
        height, width, channels = shape
        if pairs and width % 2:
            raise ValueError(f"conv_depthwise: float16 pixel pairs need an even width, not {width}")
        if pixels_error(pixels, stride):
            raise ValueError(f"conv_depthwise: {pixels_error(pixels, stride)}")
        plan = cls(height, width, channels, stride, reference.pad_amounts(height, width, stride, padding), min_pitch,
                   pairs, pixels)
        if plan.out_h < 1 or plan.out_w < 1:
            raise ValueError(f"conv_depthwise: {shape} with padding {padding!r} leaves no output")
        left, right = plan.padding[2:]
        if left > plan.pixels * stride or right > stride:
            raise ValueError(f"conv_depthwise: padding {plan.padding} wider than the kernel's row ends "
                             f"(left at most {plan.pixels * stride}, right at most {stride})")
        return plan

    @property
    def out_h(self) -> int:
        return (self.height + self.padding[0] + self.padding[1] - 3) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.width + self.padding[2] + self.padding[3] - 3) // self.stride + 1

    @property
    def c_pad(self) -> int:
        return -(-self.channels // LANES) * LANES

    @property
    def pitch(self) -> int:
        """Floats from one input pixel to the next: c_pad (or min_pitch), plus a group when that
        would be an even number of 64-byte lines, so that the lines of one group at successive
        pixels spread over the TMU cache's and the L2's sets (at C = 1024 they would fall into 2 of
        the L2's 128)."""
        width = -(-max(self.c_pad, self.min_pitch) // LANES) * LANES
        return width + (LANES if width // LANES % 2 == 0 else 0)

    @property
    def w_pad(self) -> int:
        return -(-self.out_w // self.pixels) * self.pixels

    @property
    def iterations(self) -> int:
        return self.w_pad // self.pixels

    @property
    def shift(self) -> int:
        """Columns the window starts before the float32 one's (with pairs: so that it starts a pair)."""
        return self.padding[2] % 2 if self.pairs else 0

    @property
    def left_columns(self) -> int:
        """Window columns left of the image in a row's first iteration."""
        return self.padding[2] + self.shift

    def kernel(self, relu6: bool, pack: PackOutput | None = None) -> DepthwiseKernel:
        left = self.left_columns
        right_limit = self.width + left - (self.iterations - 1) * self.pixels * self.stride
        return DepthwiseKernel(self.stride, relu6, self.iterations, left, right_limit, pack, self.pairs, self.shift,
                               self.pixels)

    def window(self, shift: int) -> int:
        """The window's columns in a row (with pairs: of the pairs it loads)."""
        loads = window_loads(self.stride, self.pairs, shift, self.pixels)
        return 2 * loads if self.pairs else loads

    def tile_heights(self, least: int, most: int) -> list[int]:
        """The pack tile heights (least to most pixels) the kernel can write: whole image rows
        dividing the image, whole iterations dividing a row, or whole half rows (half_rows) where
        those are taller than whole rows allow."""
        whole = [q * self.out_w for q in range(1, self.out_h + 1) if self.out_h % q == 0]
        within = [r for r in range(self.pixels, self.out_w, self.pixels) if self.out_w % r == 0]
        rows = [r for r in set(whole + within) if least <= r <= most]
        halves = [r for r in range(max(rows, default=0) + 1, most + 1) if self.half_rows(r)]
        return sorted(rows + halves)

    def store_clocks(self) -> float:
        """The one VDW engine's clocks for the layer's stores into a GEMM's pack: per iteration of
        each channel group 16 memory rows (k-rows) of `pixels` words, each at least dma_row_clocks,
        and the engine's latency per store (vc4common/timing.py)."""
        from vc4common.timing import param
        row = max(param("dma_row_clocks"), 4 * self.pixels / param("vdw_bytes_per_clock"))
        stores = self.out_h * self.iterations * self.c_pad // LANES
        return stores * (param("dma_latency") + LANES * row)

    def max_qpus(self) -> int:
        """QPUs that can run the kernel at once: each takes `pixels` of the VPM's rows."""
        return min(MAX_QPUS, VPM_ROWS // self.pixels)

    @property
    def vector_bytes(self) -> int:
        """Bytes from one input vector to the next along a row: a pixel's (with pairs two pixels')."""
        return self.pitch * 4

    def pixel_offset(self, pixels: int) -> int:
        """Bytes of `pixels` input pixels (an even number with pairs)."""
        assert not self.pairs or pixels % 2 == 0, "a pair's second pixel starts no vector"
        return pixels // (2 if self.pairs else 1) * self.vector_bytes

    @property
    def row_bytes(self) -> int:
        return self.pixel_offset(self.width)

    @property
    def lead(self) -> int:
        """Pixels of the input buffer before the image's first: the zero rows above and the window's
        first columns left of the image."""
        top = self.padding[0]
        return top * self.width + self.left_columns

    @property
    def input_pixels(self) -> int:
        """The input buffer's pixels: the lead, the image, the zero rows below, and what the last
        row's last iteration reads beyond them (unused: beyond the row's end)."""
        top, bottom, _, _ = self.padding
        last_row = (self.out_h - 1) * self.stride - top + 2
        window = self.window(self.shift)
        last_column = (self.iterations - 1) * self.pixels * self.stride - self.left_columns + window - 1
        pixels = self.lead + max((self.height + bottom) * self.width, last_row * self.width + last_column + 1)
        return pixels + pixels % 2 if self.pairs else pixels

    def interleave(self, qpus: int) -> int:
        """F: a task takes every F-th output row of one channel group. F = the QPU count spreads a
        group's rows over all QPUs, so that they work on neighbouring rows at the same time (their
        windows share input lines in the L2); dealing by cost (task_cost) balances the rest."""
        return max(1, min(self.out_h, qpus))

    def constants(self, y_row_bytes: int, qpus: int = MAX_QPUS, out_pitch: int | None = None) -> list[int]:
        """The uniforms before the task table, for output rows y_row_bytes apart and output pixels
        out_pitch floats apart (c_pad by default)."""
        out_bytes = 4 * (out_pitch or self.c_pad)
        every = self.interleave(qpus)
        return self._constants(every, out_bytes - 64, self.pixels * out_bytes,
                               every * y_row_bytes - self.w_pad * out_bytes,
                               self.iterations)

    def _constants(self, every: int, vdw_gap: int, out_step: int, out_gap: int, iterations: int) -> list[int]:
        """`iterations` per row (the middle ones loop: kernel_source)."""
        return [self.row_bytes, self.vector_bytes, max(0, iterations - 2), vdw_gap,
                self.pixel_offset(self.pixels * self.stride), out_step, every * self.stride * self.row_bytes, out_gap]

    def pack_output(self, rows: int, tile_bytes: int) -> PackOutput:
        """The output as the A pack of a GEMM with tiles of `rows` pixels, tile_bytes apart. A tile
        is whole image rows (a divisor of the image's), or a whole number of iterations within one
        (dividing the row)."""
        last = self.out_w - self.pixels * (self.iterations - 1)
        if rows % self.out_w == 0 and self.out_h % (rows // self.out_w) == 0:
            return PackOutput(rows, last)
        if self.out_w % rows == 0 and rows % self.pixels == 0:
            return PackOutput(rows, last, rows // self.pixels, tile_bytes - 4 * rows)
        raise ValueError(f"a pack tile of {rows} rows is neither whole image rows of {self.out_w} pixels dividing "
                         f"the {self.out_h} rows, nor a multiple of {self.pixels} pixels dividing a row")

    def pack_interleave(self, pack: PackOutput, qpus: int = MAX_QPUS) -> int:
        """F for a pack: with tiles of q whole image rows a multiple of q, so that a task's next row
        is in the same place of a later tile."""
        q = max(1, pack.rows // self.out_w)
        return q * max(1, min(self.out_h, qpus) // q)

    def pack_constants(self, pack: PackOutput, tile_bytes: int, qpus: int = MAX_QPUS) -> list[int]:
        """The uniforms for an output into a pack whose tiles are tile_bytes apart."""
        every = self.pack_interleave(pack, qpus)
        if pack.tile_iterations:                  # a row ends 4 rows into its last tile
            tiles = self.out_w // pack.rows
            gap = (every * tiles - tiles + 1) * tile_bytes - 4 * pack.rows
        else:                                     # a row ends 4 w_pad bytes on
            gap = every // (pack.rows // self.out_w) * tile_bytes - self.iterations * 4 * self.pixels
        # A tile narrower than an iteration is a row of one iteration (7 pixels of the wide kernel's
        # 8), whose store is the last's (DepthwiseKernel.depth): no store takes the full stride then.
        vdw_gap = 4 * max(0, pack.rows - self.pixels)
        return self._constants(every, vdw_gap, 4 * self.pixels, gap, self.iterations)

    def pack_tasks(self, x: int, w: int, bias: int, pack_address: int, pack: PackOutput, tile_bytes: int,
                   qpus: int = MAX_QPUS) -> list[list[int]]:
        """The tasks of an output into the pack at pack_address: pixel m = r * out_w of row r is row
        m % rows of tile m // rows, channel k's k-row at 4 * k * rows bytes into the tile."""
        every = self.pack_interleave(pack, qpus)
        return [task[:3] + [pack_address + first * self.out_w // pack.rows * tile_bytes
                            + 4 * (LANES * g * pack.rows + first * self.out_w % pack.rows)] + task[4:]
                for task, (g, first) in zip(self.tasks(x, w, bias, 0, 0, every), self._task_keys(every), strict=True)]

    def half_rows(self, rows: int) -> int:
        """q, the half rows in a pack tile of `rows` pixels, when the output can be written as half
        rows (an even row of pixels, computed as two kernels of half a row each: for a 14 x 14 image
        tiles of 49 pixels, which split an image row); 0 when it cannot. A task takes every F-th
        row, and the F of half_interleave keeps its next row in the same place of a later tile."""
        half = self.out_w // 2
        if self.out_w % 2 or half < self.pixels or rows % half or (2 * self.out_h) % (rows // half):
            return 0
        q = rows // half
        return q if self.half_interleave(q) else 0

    def half_interleave(self, q: int, qpus: int = MAX_QPUS) -> int:
        """F for half rows: 2 F half rows (F image rows) a whole number of tiles of q half rows."""
        step = q if q % 2 else q // 2
        return step * max(1, min(self.out_h, qpus) // step) if step <= self.out_h else 0

    def half_segments(self, relu6: bool, rows: int, tile_bytes: int, x: int, w: int, bias: int, pack_address: int,
                      qpus: int = MAX_QPUS) -> list[tuple[DepthwiseKernel, list[int], list[list[int]]]]:
        """The (kernel, uniforms, tasks) of the two halves of every output row into a pack whose
        tiles hold q = half_rows(rows) half rows: half h of row r is half row v = 2 r + h, at pixel
        (v % q) half of tile v // q. The left halves skip the window's columns left of the image
        in their first iteration, the right halves those right of it in their last; the seam in
        between is read as it is (both halves compute past it, storing only their own pixels)."""
        q, half = self.half_rows(rows), self.out_w // 2
        assert q, f"a pack tile of {rows} pixels is not whole half rows"
        every, iterations = self.half_interleave(q, qpus), -(-half // self.pixels)
        top, _, left, _ = self.padding
        pack = PackOutput(rows, half - self.pixels * (iterations - 1))
        gap = 2 * every // q * tile_bytes - iterations * 4 * self.pixels
        constants = self._constants(every, 4 * (rows - self.pixels), 4 * self.pixels, gap, iterations)
        out = []
        for h in (0, 1):
            start = h * half * self.stride - left                        # the window's first input column
            shift = start % 2 if self.pairs else 0                       # ... moved to start a pair
            start -= shift
            right_limit = (self.window(shift) if h == 0 else
                           self.width - start - (iterations - 1) * self.pixels * self.stride)
            kernel = DepthwiseKernel(self.stride, relu6, iterations, -start if h == 0 else 0, right_limit, pack,
                                     self.pairs, shift, self.pixels)
            tasks = []
            for g, first in self._task_keys(every):
                v = 2 * first + h
                tasks.append([x + self.pixel_offset((first * self.stride - top) * self.width + start) + 64 * g,
                              w + 64 * g, bias + 64 * g,
                              pack_address + v // q * tile_bytes + 4 * (LANES * g * rows + v % q * half),
                              len(range(first, self.out_h, every))])
            out.append((kernel, constants, tasks))
        return out

    def half_task_cost(self, task: list[int]) -> float:
        """task_cost for half rows."""
        return self._cost(task, -(-self.out_w // 2 // self.pixels))

    def _task_keys(self, every: int) -> list[tuple[int, int]]:
        return [(g, first) for g in range(self.c_pad // LANES) for first in range(every)]

    def tasks(self, x: int, w: int, bias: int, y: int, y_row_bytes: int, qpus: int = MAX_QPUS) -> list[list[int]]:
        """[first input row, weights, bias, first output row, rows] of each task: x is the address of
        the image's first pixel in the input buffer (pad_input), y the output's first pixel, rows
        y_row_bytes apart (pixels c_pad * 4 apart)."""
        top = self.padding[0]
        every = self.interleave(qpus)
        return [[x + self.pixel_offset((first * self.stride - top) * self.width - self.left_columns) + 64 * g,
                 w + 64 * g, bias + 64 * g,
                 y + first * y_row_bytes + 64 * g, len(range(first, self.out_h, every))]
                for g, first in self._task_keys(every)]

    def task_cost(self, task: list[int]) -> float:
        """A task's work in loop iterations, for dealing: each row also waits for its first loads
        about as long as an iteration takes, each task for its weights about twice that."""
        return self._cost(task, self.iterations)

    @staticmethod
    def _cost(task: list[int], iterations: int) -> float:
        return task[4] * (iterations + 1) + 2

    def pad_input(self, x: np.ndarray) -> np.ndarray:
        """The input buffer (input_pixels, pitch): the image's first pixel at row `lead`."""
        padded = np.zeros((self.input_pixels, self.pitch), np.float32)
        padded[self.lead:self.lead + self.height * self.width, :self.channels] = x.reshape(-1, self.channels)
        return padded

    def pad_weights(self, w, bias) -> tuple[np.ndarray, np.ndarray]:
        weights = np.zeros((3, 3, self.pitch), np.float32)
        weights[:, :, :self.channels] = w
        biases = np.zeros(self.c_pad, np.float32)
        if bias is not None:
            biases[:self.channels] = np.asarray(bias, np.float32).reshape(-1)
        return weights, biases


__all__ = ["DepthwiseKernel", "DepthwisePlan", "PackOutput"]
