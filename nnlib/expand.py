"""The expansion 1x1 convolution fused with the 3x3 depthwise convolution that reads it (MobileNet
v2's inverted residual block, its first two layers), on up to 12 QPUs: the expanded tensor, the
largest traffic of v2 (six times the block's input), never leaves the QPUs.

A task is one 16-channel group of the expanded tensor and one segment of `pixels` (n) output
columns, down every output row. The QPU keeps the group's expansion weights (a 16-lane vector per
input channel), its 9 depthwise weights and its two biases in registers, and reads the block's
input through its uniform stream as it lies in memory: NHWC, pixel after pixel, so no gather runs
before it. For each input row it computes the expanded values of the segment's m = s (n - 1) + 3
columns one pixel at a time (K products into one accumulator, the bias, ReLU6) and adds each to the
partial sums of the output pixels its 3x3 windows cover: up to three output rows of n sums in
regfile A (two at stride 2), each product one fmul and one fadd. An output row whose last input row
has come goes through the QPU's own VPM rows to the next pointwise layer's A pack, transposed by a
vertical VDW store (depthwise.PackOutput's way). Neighbouring segments both compute the columns
between them (the halo: (n + 2) / n of the expansion's work at stride 1, (2 n + 1) / 2 n at stride
2); the rows are streamed, each computed once.

Only the segment's first and last column can lie outside the image (3x3 windows, padding of at most
one): each task multiplies them by 1.0 or 0.0 (a task word). Rows outside the image are never read:
the loop's schedule starts and ends where their contributions would be.

Registers bound the kernel: K + the partial sums must fit beside the weights and the loop's state
(ExpandDepthwisePlan.fits), and the loop must fit the 4 KB instruction cache. A pixel's channels
beyond K in the input's pitch (its padding) are read and dropped in free MUL slots. Each row's first
instructions touch the next row's lines by TMU1, so that the uniform stream finds them in the L2.
direct.py runs a network's first convolution through the same kernel (RowStreaming, kernel_source).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qpuasm import isa
from qpuasm.builtins import dma_v32, h32, vdw_setup_0, vdw_setup_1, vpm_setup
from vc4common import host

from .matmul import float16_pair_writes
from .tasks import ALONE, VDW_ROW, VPM_ROW, Scope, branch_at_end, table_prologue, vector_loads

LANES = isa.LANES
MAX_QPUS = host.QPUS
TAPS = 9
VPM_ROWS = 64                                 # the user window: 64 rows x 16 words (semantics.md §8.3)
TMU_DEPTH = 4                                 # requests in flight per TMU (semantics.md §8.2)
ICACHE_INSTRUCTIONS = 512                     # 4 KB per slice (semantics.md §10): the loop must fit
TASK_WORDS = 7                                # [input, weights, left, right, first store, next store, tile left]
# Regfile A: the loop's state, ReLU6's bound, then the partial sums (and what of the weights does not
# fit in B). Regfile B: the steps at its end, the weights from rb0. This file's kernels and direct.py's
# share the map.
RA_ROW, RA_STORE, RA_OUT, RA_TILE_LEFT, RA_COUNT, RA_TASK_POINTER, RA_TASKS_LEFT = (f"ra{j}" for j in range(7))
RA_LEFT, RA_RIGHT, RA_VPM_SETUP, RA_VDW_SETUP, RA_SIX, RA_VDW_STRIDE = (f"ra{j}" for j in range(7, 13))
RA_FREE = 13
RB_ROW_BYTES, RB_STEP, RB_TILE_STEP, RB_TILE_ROWS, RB_TOUCH = (f"rb{j}" for j in range(27, 32))
RB_FREE = 27                                  # rb0 .. rb26 hold weights
RB_WEIGHT = [f"rb{t}" for t in range(TAPS)]   # the depthwise weights; the expansion's follow
# Accumulators: r0 the depthwise bias, r1 a product, r2 the expanded value, r3 the expansion bias.
WEIGHT_VECTORS_AFTER_B = 11                  # the expansion bias, 9 depthwise weights, the depthwise bias


@dataclass(frozen=True)
class Schedule:
    """The loop over input rows: a body of one input row (stride 1) or two (stride 2), each with
    the partial-sum rows it adds to (role, kh: the row of the 3x3 window it is), the role whose
    output row the body completes and stores, and the roles that move down after it. `before`:
    the roles set before the loop (to the bias, or to zero: a row that is stored to the scratch
    area); `dummy`: the first store goes to the scratch area; `after`: one more store after the
    loop (the last output row, whose window's last row is padding)."""

    roles: tuple[str, ...]
    rows: tuple[tuple[tuple[str, int], ...], ...]
    store: str
    moves: tuple[tuple[str, str], ...]
    before: tuple[tuple[str, str], ...]
    dummy: bool
    after: bool

    @staticmethod
    def of(stride: int, pad_top: int) -> Schedule:
        if stride == 1:        # row r: kh 2 of out[r - 1] (done), kh 1 of out[r], kh 0 of out[r + 1]
            return Schedule(("prev", "cur", "next"), ((("prev", 2), ("cur", 1), ("next", 0)),), "prev",
                            (("prev", "cur"), ("cur", "next")), (("prev", "zero"), ("cur", "bias")), True, True)
        if pad_top == 1:       # rows 2c, 2c + 1: kh 1, then kh 2 of out[c] (done) and kh 0 of out[c + 1]
            return Schedule(("cur", "next"), ((("cur", 1),), (("cur", 2), ("next", 0))), "cur",
                            (("cur", "next"),), (("cur", "bias"),), False, False)
        # pad_top 0: rows 2c, 2c + 1: kh 2 of out[c - 1] (done) and kh 0 of out[c], then kh 1 of out[c]
        return Schedule(("prev", "cur"), ((("prev", 2), ("cur", 0)), (("cur", 1),)), "prev",
                        (("prev", "cur"),), (("prev", "zero"),), True, True)

    def first(self, role: str) -> int:
        """The kh whose contribution starts the role's sums in a body (the others add to them)."""
        return 0 if role == self.roles[-1] else -1


class RowStreaming:
    """What the kernels that stream input rows through a Schedule share (this file's and
    direct.py's): the geometry of a segment and where its partial sums live. Subclasses are frozen
    dataclasses with stride, pad_top, pixels and iterations, and SUMS_START."""

    SUMS_START = RA_FREE
    pairs = False                            # the output as float16 pixel pairs (store)

    def check_geometry(self) -> None:
        if self.stride not in (1, 2) or self.pad_top not in (0, 1) or self.pad_left not in (0, 1):
            raise ValueError("stride 1 or 2, padding 0 or 1")
        if self.stride == 1 and self.pad_top != 1:
            raise ValueError("stride 1 pads one row at the top")

    @property
    def columns(self) -> int:
        """m: the input columns under a segment's windows."""
        return self.stride * (self.pixels - 1) + 3

    @property
    def schedule(self) -> Schedule:
        return Schedule.of(self.stride, self.pad_top)

    def sums(self, role: str) -> list[str]:
        """The registers of a role's n partial sums."""
        start = self.SUMS_START + self.schedule.roles.index(role) * self.pixels
        return [f"ra{start + i}" for i in range(self.pixels)]

    def targets(self, row: tuple[tuple[str, int], ...], j: int) -> list[tuple[str, int, bool]]:
        """What input column j of a body row feeds: (partial sum, tap 3 kh + kw, whether the
        contribution starts the sum). Output pixel i's window covers columns s i .. s i + 2."""
        out = []
        for role, kh in row:
            for kw in range(3):
                i, rest = divmod(j - kw, self.stride)
                if rest == 0 and 0 <= i < self.pixels:
                    out.append((self.sums(role)[i], 3 * kh + kw, kh == self.schedule.first(role) and kw == 0))
        return out

    def sums_end(self) -> int:
        """The first regfile-A register after the sums."""
        return self.SUMS_START + len(self.schedule.roles) * self.pixels

    def source(self, scope: Scope = ALONE) -> str:
        return kernel_source(self, scope)


@dataclass(frozen=True)
class ExpandDepthwiseKernel(RowStreaming):
    """What one compiled variant bakes in."""

    k: int                                   # input channels, K
    pitch: int                               # floats from one input pixel to the next (>= K)
    stride: int
    pad_top: int
    pad_left: int
    pixels: int                              # n: output pixels of a segment
    iterations: int                          # loop iterations per task
    expand_relu6: bool = True
    relu6: bool = True

    def __post_init__(self) -> None:
        if self.k < 2 or self.pitch < self.k:
            raise ValueError(f"K = {self.k} in a pitch of {self.pitch}: K >= 2, pitch >= K")
        self.check_geometry()

    def weights(self) -> list[str]:
        """Where the K expansion weight vectors live: regfile B's free registers, then A's."""
        a_start = self.sums_end()
        size = isa.REGFILE_SIZE
        names = [f"rb{j}" for j in range(TAPS, RB_FREE)] + [f"ra{j}" for j in range(a_start, size)]
        if a_start > size or self.k > len(names):
            raise ValueError(f"K = {self.k} expansion weights and {len(self.schedule.roles)} rows of "
                             f"{self.pixels} sums do not fit the registers (K <= {len(names)})")
        return names[:self.k]

    def vectors(self) -> list[str]:
        """The registers of the weights block's vectors, in its order (ExpandDepthwisePlan.weights_block)."""
        return self.weights() + ["r3"] + RB_WEIGHT + ["r0"]

    bias = "r0"                              # a partial sum starts from the depthwise bias

    def input_row(self, row: tuple[tuple[str, int], ...]) -> list[str]:
        return _input_row(self, row)

    def store_setup(self) -> int:
        """16 memory rows (k-rows of the pack) of n words from the VPM's columns (depthwise.PackOutput)."""
        return vdw_setup_0(LANES, self.pixels, dma_v32(0, 0))


def row_start(touch: bool = True) -> list[str]:
    """The uniform stream restarts at the row (two instructions before it reads: semantics.md §8.6);
    with `touch` a TMU1 request (RB_TOUCH: a row on, a line per lane) touches the next row's lines,
    bringing them into the L2 while this row runs (the stream jumps there, and from SDRAM it would
    wait for every line); the row's last instruction pops it (ldtmu1). Without, the row follows
    the last in memory (direct.py's streams): the uniforms cache's prefetch has its first lines."""
    touching = f"add t1s, {RA_ROW}, {RB_TOUCH}" if touch else "nop"
    return [f"mov unif_addr, {RA_ROW}", touching, f"add {RA_ROW}, {RA_ROW}, {RB_ROW_BYTES}"]


def _input_row(cfg: ExpandDepthwiseKernel, row: tuple[tuple[str, int], ...]) -> list[str]:
    """One input row: per column the expanded value (K products, the bias, ReLU6, the image's edge)
    and its products."""
    weights, drops = cfg.weights(), cfg.pitch - cfg.k
    lines = row_start()
    for j in range(cfg.columns):
        lines.append(f"fmul r1, {weights[0]}, unif")
        lines.append(f"fadd r2, r1, r3; fmul r1, {weights[1]}, unif")
        lines += [f"fadd r2, r2, r1; fmul r1, {w}, unif" for w in weights[2:]]
        tail = ["fadd r2, r2, r1"]
        if cfg.expand_relu6:
            tail += ["fmax r2, r2, 0", f"fmin r2, r2, {RA_SIX}"]
        if j in (0, cfg.columns - 1):            # outside the image in the first or last segment
            tail.append(f"fmul r2, r2, {RA_LEFT if j == 0 else RA_RIGHT}")
        # The pitch's padding channels are read and dropped, in free MUL slots where there are.
        free = [n for n, line in enumerate(tail) if "fmul" not in line][:drops]
        for n in free:
            tail[n] += "; mov -, unif"
        lines += tail + ["mov -, unif"] * (drops - len(free))
        pending = None
        for target, tap, start in cfg.targets(row, j):
            text = f"fmul r1, r2, {RB_WEIGHT[tap]}"
            lines.append(f"{pending}; {text}" if pending else text)
            pending = f"fadd {target}, r1, r0" if start else f"fadd {target}, {target}, r1"
        if pending:
            lines.append(pending)
    lines[-1] += "; ldtmu1"
    return lines


def store(sums: list[str], relu6: bool, pairs: bool = False) -> list[str]:
    """n sums (ReLU6) through this QPU's VPM rows to memory, or with `pairs` as float16 pixel pairs
    (network.Layout.pairs: matmul.float16_pair_writes). Then the next address: one row on, or,
    after a pack tile's last row, to the next tile."""
    lines = ["mov -, vw_wait", f"mov vw_setup, {RA_VPM_SETUP}"]
    if pairs:
        lines += float16_pair_writes(sums, relu6, RA_SIX, "r1")
    else:
        for s in sums:
            lines += [f"fmax r1, {s}, 0", f"fmin vpm, r1, {RA_SIX}"] if relu6 else [f"mov vpm, {s}"]
    return lines + [f"mov vw_setup, {RA_VDW_SETUP}", f"mov vw_setup, {RA_VDW_STRIDE}", f"mov vw_addr, {RA_STORE}",
                    f"mov {RA_STORE}, {RA_OUT}; mov r1, {RB_STEP}",
                    f"sub.setf {RA_TILE_LEFT}, {RA_TILE_LEFT}, 1",
                    f"mov.ifz r1, {RB_TILE_STEP}", f"mov.ifz {RA_TILE_LEFT}, {RB_TILE_ROWS}",
                    f"add {RA_OUT}, {RA_OUT}, r1"]


def kernel_source(cfg, scope: Scope = ALONE) -> str:
    """A kernel that streams input rows through a schedule of partial-sum rows (this file's and
    direct.py's): `cfg` gives its weight vectors (vectors()), its code per input row (input_row),
    the register a sum starts from (bias), its VDW store setup (store_setup). Uniforms: input row
    bytes, the output's step per row, its step to the next tile after a tile's last row and the rows
    per tile, the VDW stride (bytes), the offset of the last line a row's touch reaches, then the
    task table (tasks.py). A task: [address of the input pixel under the segment's first column in
    the first row read, its group's weight vectors (64 bytes each), 1.0 or 0.0 for the first and
    last column, the first store's address (the scratch area when the schedule starts with a
    dummy), the next one's, and the rows left in the next one's tile]."""
    schedule, n = cfg.schedule, cfg.pixels
    vectors = cfg.vectors()
    lines = [f"""
        mov {RB_ROW_BYTES}, unif
        mov {RB_STEP}, unif
        mov {RB_TILE_STEP}, unif
        mov {RB_TILE_ROWS}, unif
        mov r0, unif
        mov r1, {vdw_setup_1(0)}
        add {RA_VDW_STRIDE}, r0, r1
        mov r0, unif
        shl r1, elem_num, 6
        min r1, r1, r0
        add {RB_TOUCH}, r1, {RB_ROW_BYTES}""",
             table_prologue(RA_TASK_POINTER, RA_TASKS_LEFT, scope=scope, between=f"""        mov r0, {n * VPM_ROW}
        mul24 r2, r1, r0
        mov r0, {vpm_setup(0, 1, h32(0))}"""),
             f"""        add {RA_VPM_SETUP}, r0, r2
        mov r0, {n * VDW_ROW}
        mul24 r2, r1, r0
        mov r0, {cfg.store_setup()}
        add {RA_VDW_SETUP}, r0, r2
        mov {RA_SIX}, 6.0
:{scope('task')}
        mov unif_addr, {RA_TASK_POINTER}
        shl r2, elem_num, 2
        mov r0, {4 * TASK_WORDS}
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0
        mov {RA_ROW}, unif
        add r1, unif, r2
        mov {RA_LEFT}, unif
        mov {RA_RIGHT}, unif
        mov {RA_STORE}, unif
        mov {RA_OUT}, unif
        mov {RA_TILE_LEFT}, unif
        mov r0, 64"""]
    # The weight vectors by TMU0, each popped into its register.
    body, popped = vector_loads(vectors, 0, TMU_DEPTH)
    body.append(popped)
    if cfg.bias == vectors[-1] and cfg.bias[:2] in ("ra", "rb"):
        body.append("nop")                    # a regfile write is read two instructions on (rule 1)
    for role, value in schedule.before:
        body += [f"mov {s}, {cfg.bias if value == 'bias' else 0}" for s in cfg.sums(role)]
    body.append(f"mov {RA_COUNT}, {cfg.iterations}")
    lines += [f"        {line}" for line in body]
    loop: list[str] = []
    for row in schedule.rows:
        loop += cfg.input_row(row)
    loop += store(cfg.sums(schedule.store), cfg.relu6, cfg.pairs)
    loop.append(f"sub.setf {RA_COUNT}, {RA_COUNT}, 1")
    moves = [f"mov {d}, {s}" for dst, src in schedule.moves for d, s in zip(cfg.sums(dst), cfg.sums(src), strict=True)]
    loop += moves + ["nop"] * max(0, 3 - len(moves))      # the moves fill the branch's delay slots
    loop = branch_at_end(loop, f"brr.anynz -, r:{scope('row')}")
    lines.append(f":{scope('row')}")
    lines += [f"        {line}" for line in loop]
    if schedule.after:
        lines += [f"        {line}" for line in store(cfg.sums(schedule.store), cfg.relu6, cfg.pairs)]
    lines += [f"""        sub.setf {RA_TASKS_LEFT}, {RA_TASKS_LEFT}, 1
        brr.anynz -, r:{scope('task')}
        nop
        nop
        nop
""", scope.end()]
    return "\n".join(lines) + "\n"


def loop_instructions(cfg) -> int:
    """Instructions of one loop iteration (the cost model's, and the instruction cache's, count)."""
    body = [line for row in cfg.schedule.rows for line in cfg.input_row(row)]
    moves = sum(cfg.pixels for _ in cfg.schedule.moves)
    return len(body) + len(store(cfg.sums(cfg.schedule.store), cfg.relu6, cfg.pairs)) + 1 + max(3, moves)


@dataclass(frozen=True)
class ExpandDepthwisePlan:
    """One fused layer's shapes and tiling: input (height, width, K) with pixels `pitch` floats
    apart, C expanded channels, the depthwise's stride and padding (top, bottom, left, right), n
    output pixels per segment, on `qpus` QPUs."""

    height: int
    width: int
    k: int
    pitch: int
    channels: int
    stride: int
    padding: tuple[int, int, int, int]
    pixels: int
    qpus: int = MAX_QPUS
    expand_relu6: bool = True
    relu6: bool = True

    @property
    def out_h(self) -> int:
        top, bottom, _, _ = self.padding
        return (self.height + top + bottom - 3) // self.stride + 1

    @property
    def out_w(self) -> int:
        _, _, left, right = self.padding
        return (self.width + left + right - 3) // self.stride + 1

    @property
    def c_pad(self) -> int:
        return -(-self.channels // LANES) * LANES

    @property
    def groups(self) -> int:
        return self.c_pad // LANES

    @property
    def segments(self) -> int:
        return self.out_w // self.pixels

    @property
    def iterations(self) -> int:
        return self.height if self.stride == 1 else self.out_h

    @staticmethod
    def error(k: int, pitch: int, stride: int, padding: tuple[int, int, int, int]) -> str | None:
        """Why no plan can run these (None: some may; fits() says for one plan)."""
        if stride not in (1, 2) or max(padding) > 1:
            return f"stride {stride}, padding {padding} (stride 1 or 2, padding 0 or 1)"
        if stride == 1 and padding != (1, 1, 1, 1):
            return f"stride 1 with padding {padding} (one on every side only)"
        if k < 2 or pitch < k:
            return f"K = {k} in a pitch of {pitch}"
        return None

    def kernel(self) -> ExpandDepthwiseKernel:
        return ExpandDepthwiseKernel(self.k, self.pitch, self.stride, self.padding[0], self.padding[2], self.pixels,
                                     self.iterations, self.expand_relu6, self.relu6)

    def fits(self) -> str | None:
        """Why this plan cannot run (None: it can): the registers, the VPM rows, the instruction cache."""
        if self.out_w % self.pixels:
            return f"{self.pixels} pixels per segment do not divide a row of {self.out_w}"
        if self.pixels * self.qpus > VPM_ROWS:
            return f"{self.qpus} QPUs x {self.pixels} VPM rows exceed the VPM's {VPM_ROWS}"
        if self.stride == 2 and self.height != 2 * self.out_h:
            return "stride 2 reads two input rows per output row"
        if self.stride * (self.out_w - 1) + 2 - self.padding[2] > self.width:
            return "the windows reach two columns beyond the image"
        try:
            cfg = self.kernel()
            cfg.vectors()
        except ValueError as error:
            return str(error)
        if loop_instructions(cfg) > ICACHE_INSTRUCTIONS - 64:
            return f"a loop of {loop_instructions(cfg)} instructions leaves the 4 KB instruction cache too little"
        return None

    @classmethod
    def best(cls, height: int, width: int, k: int, pitch: int, channels: int, stride: int,
             padding: tuple[int, int, int, int], qpus: int = MAX_QPUS, **fields) -> ExpandDepthwisePlan | None:
        """The cheapest plan that fits (clocks), or None; `fields`: the rest of the plan's."""
        if cls.error(k, pitch, stride, padding):
            return None
        plans = [cls(height, width, k, pitch, channels, stride, padding, n, q, **fields)
                 for n in range(1, 17) for q in sorted({qpus, min(qpus, 8)})]
        plans = [p for p in plans if p.fits() is None]
        return min(plans, key=lambda p: p.clocks(), default=None)

    def tile_heights(self, least: int, most: int) -> list[int]:
        """The pack tile heights the kernel can write: whole output rows dividing the image, or
        whole segments dividing a row."""
        whole = [q * self.out_w for q in range(1, self.out_h + 1) if self.out_h % q == 0]
        within = [r for r in range(self.pixels, self.out_w, self.pixels) if self.out_w % r == 0]
        return sorted(r for r in set(whole + within) if least <= r <= most)

    def _tiles(self, rows: int, tile_bytes: int) -> tuple[int, int, int]:
        """(step to the next output row within a tile, step after a tile's last row, rows per tile)."""
        if rows % self.out_w == 0:
            q = rows // self.out_w
            return 4 * self.out_w, tile_bytes - 4 * (q - 1) * self.out_w, q
        assert self.out_w % rows == 0 and rows % self.pixels == 0, f"a tile of {rows} pixels"
        step = self.out_w // rows * tile_bytes
        return step, step, 1

    def constants(self, rows: int, tile_bytes: int) -> list[int]:
        step, tile_step, tile_rows = self._tiles(rows, tile_bytes)
        return [self.row_bytes, step, tile_step, tile_rows, self.vdw_stride(rows), 64 * (self.touched_lines - 1)]

    @property
    def row_bytes(self) -> int:
        """Bytes from one input row of a segment's stream to the next: the input's NHWC rows."""
        return 4 * self.pitch * self.width

    def segment_input(self, x: int, s: int) -> int:
        """Where segment s's stream starts: its first column of the first row, in an input whose
        pixel (0, 0) is at x."""
        return x + 4 * self.pitch * (self.stride * s * self.pixels - self.padding[2])

    def vdw_stride(self, rows: int) -> int:
        """Bytes from one memory row of a store to the next: a pack's k-rows are `rows` words."""
        return 4 * (rows - self.pixels)

    def out_address(self, out: int, y: int, x0: int, g: int, rows: int, tile_bytes: int) -> int:
        """Where the store of output row y's segment from column x0, group g, starts: pixel
        p = y out_w + x0 is row p % rows of tile p // rows, the group's first k-row 16 g rows in."""
        p = y * self.out_w + x0
        return out + p // rows * tile_bytes + 4 * (LANES * g * rows + p % rows)

    @property
    def vectors_per_group(self) -> int:
        return self.k + WEIGHT_VECTORS_AFTER_B

    @property
    def touched_lines(self) -> int:
        """The lines of a row's segment (at most the 16 one TMU request touches)."""
        return min(LANES, -(-4 * self.pitch * self.kernel().columns // 64) + 1)

    @property
    def slack_pixels(self) -> int:
        """Input pixels after the image that the last row's touch reads (never used)."""
        return self.width + 16 * self.touched_lines * 4 // (4 * self.pitch) + 1

    def task_lists(self, x: int, weights: int, out: int, rows: int, tile_bytes: int,
                   scratch: int) -> list[list[list[int]]]:
        """The tasks, segment after segment, dealt round-robin: the QPUs of a slice then work on
        one segment's groups at once, and its uniforms cache serves them the same input lines.
        x: where the input starts (segment_input); out: the output's (out_address)."""
        _, _, tile_rows = self._tiles(rows, tile_bytes)
        left = self.padding[2]
        dummy = self.kernel().schedule.dummy

        tasks = []
        for s in range(self.segments):
            x0 = s * self.pixels
            first = self.stride * x0 - left
            last = self.stride * (x0 + self.pixels - 1) + 2 - left
            for g in range(self.groups):
                stores = [scratch] * dummy + [self.out_address(out, y, x0, g, rows, tile_bytes)
                                              for y in range(2 - dummy)]
                y_next = 1 - dummy
                tasks.append([self.segment_input(x, s), weights + 64 * self.vectors_per_group * g,
                              _float_bits(first >= 0), _float_bits(last < self.width), stores[0], stores[1],
                              tile_rows - y_next % tile_rows])
        count = min(self.qpus, len(tasks))
        return [tasks[q::count] for q in range(count)]

    def scratch_bytes(self, rows: int) -> int:
        """The area the dummy first store of a task writes: 16 k-rows of a tile."""
        return 4 * (LANES * rows + self.pixels)

    def weights_block(self, b: np.ndarray, b_bias, w: np.ndarray, w_bias) -> np.ndarray:
        """Per group: its K expansion vectors (b[k, 16 g:16 g + 16]), the expansion bias, the 9
        depthwise vectors (w[kh, kw, ...], 3 kh + kw) and the depthwise bias."""
        c, k = self.channels, self.k
        block = np.zeros((self.groups, k + WEIGHT_VECTORS_AFTER_B, LANES), np.float32)
        padded = np.zeros((k + WEIGHT_VECTORS_AFTER_B, self.c_pad), np.float32)
        padded[:k, :c] = b
        if b_bias is not None:
            padded[k, :c] = np.asarray(b_bias, np.float32).reshape(-1)
        padded[k + 1:k + 1 + TAPS, :c] = np.asarray(w, np.float32).reshape(TAPS, c)
        if w_bias is not None:
            padded[k + 1 + TAPS, :c] = np.asarray(w_bias, np.float32).reshape(-1)
        block[:] = padded.reshape(k + WEIGHT_VECTORS_AFTER_B, self.groups, LANES).transpose(1, 0, 2)
        return block

    def clocks(self) -> float:
        """The modeled cost: the QPUs' instructions (the uniform stream's line fills where they come
        slower than the loop reads them: vc4common/timing.py's l2_hit), or the one VDW engine's
        stores, whichever is slower (they overlap)."""
        from vc4common.timing import param
        cfg = self.kernel()
        loop = loop_instructions(cfg)
        reads = len(cfg.schedule.rows) * cfg.columns * self.pitch
        line_clocks = max(4 * loop * 16 / reads, param("l2_hit"))
        iteration = reads / 16 * line_clocks
        tasks = -(-self.segments * self.groups // self.qpus)
        compute = tasks * (self.iterations * iteration + 4 * (2 * self.vectors_per_group + 40))
        stores = self.segments * self.groups * (self.out_h + cfg.schedule.dummy)
        return max(compute, stores * (param("dma_latency") + self.store_rows_clocks()))

    def store_rows_clocks(self) -> float:
        """The VDW engine's clocks for one store's memory rows (each at least dma_row_clocks,
        vc4common/timing.py): 16 k-rows of n words into a pack."""
        from vc4common.timing import param
        return LANES * max(param("dma_row_clocks"), 4 * self.pixels / param("vdw_bytes_per_clock"))

    @property
    def flops(self) -> int:
        expansion = 2 * self.height * self.width * self.k * self.channels
        return expansion + 2 * TAPS * self.out_h * self.out_w * self.channels


def _float_bits(flag: bool) -> int:
    return 0x3F800000 if flag else 0


__all__ = ["ExpandDepthwiseKernel", "ExpandDepthwisePlan", "Schedule", "loop_instructions"]
