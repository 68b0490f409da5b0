"""The core: one QPU instruction of decoded code (program.py), `step`: its reads, the two ALUs with
their packs, unpacks, conditions and flags, its writes, signals, load immediates, semaphores and
branches, and the instruction's clocks. The I/O it drives is qpu_io.py, strict mode's checks
strict.py, the state layout state.py; scheduler.py picks the QPU that runs next.

Written once in the compilable subset (jit.py): numba compiles it where installed, and the same
functions run as plain Python elsewhere. All state lives in two flat int64 arrays owned by
machine.V3D (state.py); every lane value is a 32-bit pattern held in an int64. The core never
raises: it returns a status, with the details and the events in the machine array, and machine.py
turns them into exceptions and warnings. Rules cite ../shared/reference/semantics.md (§N) or qpu-isa.md.
"""

from __future__ import annotations

from qpuasm import isa

from . import alu
from . import program as P
from .alu import add_op, mul_op
from .fparith import EXP_SPECIAL, MAGNITUDE, exponent, fadd_common, fmul_common
from .jit import jit
from .memory import OUTSIDE
from .packing import OTHER_OP, pack_a, pack_mul, unpack_lanes
from .qpu_io import (
    uniform,
    write_io,
)
from .state import (
    ACC,
    ALL_LANES,
    BLOCKED,
    BRANCH_COUNTDOWN,
    BRANCH_TARGET,
    BUSY,
    C_FROM_MUL,
    CYCLE,
    DMA_DONE,
    E_BREAKPOINT,
    E_LDTMU_EMPTY,
    E_MEMORY,
    E_PENDING_FULL,
    E_RESERVED_ADD,
    E_RESERVED_BRANCH,
    E_SIGNAL,
    E_UNDEFINED,
    E_VPM_READ_EMPTY,
    E_VPM_SIZE,
    END_COUNTDOWN,
    ERROR,
    EXECUTED,
    FIFO_CAPACITY,
    FIFO_COUNT,
    FIFO_HEAD,
    FIFO_READY,
    FIFO_VALUES,
    FLAGS,
    G_MUTEX_OWNER,
    INSTRUCTIONS,
    KIND_TMU,
    LANES,
    LAST_WRITE,
    MASK,
    NO_OWNER,
    P_CPI,
    PC,
    PENDING,
    PENDING_COUNT,
    PENDING_VALUES,
    POISON,
    POISON_A,
    POISON_B,
    POISON_FLAGS,
    R_FTOI,
    R_MUL_NOP_WRITE,
    R_PACK_OUTSIDE_A,
    R_SFU_R4_LDTMU,
    R_UNDEFINED_BRANCH,
    R_VPM_READS_LEFT,
    REG_A,
    REGS,
    RUNNING,
    S_A,
    S_AA,
    S_AB,
    S_ADD_C,
    S_ADD_OUT,
    S_B,
    S_COND_ADD,
    S_COND_MUL,
    S_ELEMENT,
    S_MA,
    S_MASKS,
    S_MB,
    S_MUL_C,
    S_MUL_OUT,
    S_ONES,
    S_TMP,
    S_TMP2,
    S_VALUES,
    S_ZERO,
    SEMAPHORES,
    ST_DMA,
    ST_MUTEX,
    ST_SEMAPHORE,
    ST_TMU,
    ST_VPM,
    UNIFORMS,
    VPM_READ,
    VPM_READS_LEFT,
    VPM_READY,
    WAITING,
    C,
    N,
    Z,
    fail,
    lane_view,
    register_row,
    report,
    reserve_pending,
    sfu_pending,
    stall,
)
from .strict import (
    carry_check,
    check_reads,
    define,
    merged,
    mux_poison,
    rotate_poison,
    thread_end_checks,
    unwritten,
    with_flags,
)
from .tables import (
    ADD_FLOAT_INPUT,
    ADD_FLOAT_RESULT,
    ADD_RESERVED,
    ADD_SATURATION,
    ADD_UNARY,
    BRANCH_ALL,
    BRANCH_FLAG,
    BRANCH_RESERVED,
    BRANCH_WANTS,
    C_ADD_A,
    C_ADD_B,
    C_COND_ADD,
    C_COND_BR,
    C_COND_MUL,
    C_IMM,
    C_LDI_MODE,
    C_MUL_A,
    C_MUL_B,
    C_OP_ADD,
    C_OP_MUL,
    C_PACK,
    C_PM,
    C_RADDR_A,
    C_RADDR_B,
    C_REG,
    C_REL,
    C_SA,
    C_SEMAPHORE,
    C_SF,
    C_SIG,
    C_UNPACK,
    C_WADDR_ADD,
    C_WADDR_MUL,
    C_WS,
    COND_FLAG,
    COND_WANTS,
    FTOI,
    LDI_PER_ELEMENT_SIGNED,
    LDI_PER_ELEMENT_UNSIGNED,
    MOV_ADD,
    MOV_MUL,
    MUL_FLOAT_INPUT,
    MUL_FLOAT_RESULT,
    SIG_BKPT,
    SIG_LDTMU0,
    SIG_LDTMU1,
    SIG_THREND,
    SMALL_IMM_BITS,
    per_element_value,
)
from .vpm import generic_advanced, read_vector, size_reserved

MEASURED_FTOI_OVERFLOW = (127 + 97) << 23       # ±2^97 -> 0 (vc4c_hw/alu_ops.csv)


# ---- reads ----------------------------------------------------------------------------------------

@jit(inline=True)
def _read(qpu, m, vpm, cache, data, params, q: int, file: int, addr: int, out: int) -> int:
    """One read through raddr_a (file 0) or raddr_b (1), with its side effects: where in qpu[q] its
    16 lanes are (a register's own row, a constant vector, or `out`, filled here); -1 on an error."""
    if addr < isa.REGFILE_SIZE:
        qpu[q, POISON_A + file] = qpu[q, POISON + file * isa.REGFILE_SIZE + addr]
        return REGS + (file * isa.REGFILE_SIZE + addr) * LANES
    qpu[q, POISON_A + file] = 0
    if addr == isa.NOP_ADDR or addr == isa.ADDR_MUTEX:
        return S_ZERO                           # the mutex was acquired by the caller before the read
    value = 0
    if addr == isa.ADDR_UNIFORM:
        value = uniform(qpu, m, cache, data, params, q)
        if value == OUTSIDE:
            fail(m, q, qpu[q, PC], E_MEMORY, qpu[q, UNIFORMS], 4)
            return -1
        qpu[q, UNIFORMS] += 4
    elif addr == isa.ADDR_VPM:
        stall(qpu, q, ST_VPM, qpu[q, VPM_READY])
        if qpu[q, VPM_READS_LEFT] <= 0:
            fail(m, q, qpu[q, PC], E_VPM_READ_EMPTY, 0, 0)
            return -1
        if size_reserved(qpu[q, VPM_READ]):
            fail(m, q, qpu[q, PC], E_VPM_SIZE, qpu[q, VPM_READ], 0)
            return -1
        qpu[q, VPM_READS_LEFT] -= 1
        read_vector(vpm, qpu[q, VPM_READ], qpu[q], out)
        qpu[q, VPM_READ] = generic_advanced(qpu[q, VPM_READ])
        return out
    elif addr == isa.ADDR_VPM_SETUP:            # vr_busy / vw_busy: is this QPU's DMA still running?
        value = 1 if qpu[q, CYCLE] < qpu[q, DMA_DONE + file] else 0
    elif addr == isa.ADDR_VPM_DMA:              # vr_wait / vw_wait: stall until it is done
        stall(qpu, q, ST_DMA, qpu[q, DMA_DONE + file])
        return S_ZERO
    elif file == 1:
        value = q                               # QPU number (B), and the default of unmapped reads (§10)
    else:
        return S_ELEMENT                        # element number (A), and the default of unmapped reads
    vector = lane_view(qpu, q, out)
    for i in range(LANES):
        vector[i] = value
    return out


@jit(inline=True)
def _operand(qpu, q: int, mux: int, float_op: bool, pm: int, unpack_code: int, a: int, b: int, dst: int) -> int:
    """Where the value an input mux delivers is: what raddr_a read (`a`, unpacked into `dst` when
    pm = 0), what raddr_b read (`b`), or an accumulator (r4 unpacked into `dst` when pm = 1)
    (§5.1, §5.2)."""
    if mux == isa.MUX_A:
        if pm == 0 and unpack_code:
            unpack_lanes(unpack_code, lane_view(qpu, q, a), lane_view(qpu, q, dst), float_op)
            return dst
        return a
    if mux == isa.MUX_B:
        return b
    start = REGS + (ACC + mux) * LANES
    if mux == isa.MUX_R4 and pm and unpack_code:
        unpack_lanes(unpack_code, lane_view(qpu, q, start), lane_view(qpu, q, dst), True)    # §5.2
        return dst
    return start


# ---- flags and conditions -------------------------------------------------------------------------

@jit(inline=True)
def _condition(qpu, m, q: int, cond: int, dst: int) -> int:
    """Where the per-lane write condition (1/0) against the flags before this instruction is: the
    constant ones or zeros, or `dst`, filled here (§6.1)."""
    if cond == isa.COND_ALWAYS:
        return S_ONES
    if cond == isa.COND_NEVER:
        return S_ZERO
    flag = COND_FLAG[cond]
    if flag == C:
        carry_check(qpu, m, q)
    want = COND_WANTS[cond]
    flags, out = lane_view(qpu, q, FLAGS + flag * LANES), lane_view(qpu, q, dst)
    for i in range(LANES):
        out[i] = 1 if flags[i] == want else 0
    return dst


@jit(inline=True)
def _set_flags(qpu, q: int, out: int, carry: int, cond: int, from_mul: bool, poison: int) -> None:
    """Z, N from the result, C from the op; only in lanes whose condition passed (§6.2). `poison`:
    the result's undefined lanes."""
    qpu[q, POISON_FLAGS] = merged(qpu, q, qpu[q, POISON_FLAGS], cond, poison)
    where, values, carries = lane_view(qpu, q, cond), lane_view(qpu, q, out), lane_view(qpu, q, carry)
    for i in range(LANES):
        if where[i]:
            value = values[i]
            qpu[q, FLAGS + Z * LANES + i] = 1 if value == 0 else 0
            qpu[q, FLAGS + N * LANES + i] = value >> 31
            qpu[q, FLAGS + C * LANES + i] = carries[i]
            qpu[q, FLAGS + C_FROM_MUL * LANES + i] = 1 if from_mul else 0


# ---- writes ---------------------------------------------------------------------------------------

@jit(inline=True)
def _write(qpu, m, vpm, cache, data, params, q: int, file: int, addr: int, cond: int, src: int,
           masked: bool, poison: int) -> bool:
    """Write the 16 lanes at qpu[q, src] (only the bits in S_MASKS if `masked`) to a regfile or I/O
    address, lane by lane under the condition at qpu[q, cond]; `poison`: the lanes whose value is
    undefined (a packed write counts as defining its lanes: policy, it never reports falsely).
    False on an error."""
    row = register_row(file, addr)
    if row >= 0:
        qpu[q, LAST_WRITE + row] = qpu[q, INSTRUCTIONS]
        define(qpu, q, row, cond, poison)
        register, values, where = lane_view(qpu, q, REGS + row * LANES), lane_view(qpu, q, src), lane_view(qpu, q, cond)
        if masked:
            masks = lane_view(qpu, q, S_MASKS)
            for i in range(LANES):
                if where[i]:
                    register[i] = (register[i] & ~masks[i] & MASK) | (values[i] & masks[i])
        elif cond == S_ONES:
            for i in range(LANES):
                register[i] = values[i]
        else:
            for i in range(LANES):
                if where[i]:
                    register[i] = values[i]
        return True
    return write_io(qpu, m, vpm, cache, data, params, q, file, addr, cond, src, poison)


@jit(inline=True)
def _write_results(qpu, m, vpm, cache, data, params, q: int, prog, row: int, op_add: int, op_mul: int,
                   add_out: int, mul_out: int, add_c: int, mul_c: int, add_a: int, add_b: int, cond_add: int,
                   cond_mul: int, poison_add: int, poison_mul: int) -> bool:
    """Both ALU results (at add_out, mul_out) to their destinations, packed as pm and pack say
    (§5.3, §5.4), under the conditions at cond_add, cond_mul; poison_*: their undefined lanes. An
    op-code nop writes nothing, whatever its waddr (semantics.md §4.3)."""
    ws, pm, pack = prog[row, C_WS], prog[row, C_PM], prog[row, C_PACK]
    packed_unit = 0 if ws == 0 else 1          # pm = 0: the regfile-A pack applies to the unit writing A
    for unit in range(2):
        addr = prog[row, C_WADDR_ADD] if unit == 0 else prog[row, C_WADDR_MUL]
        cond = cond_add if unit == 0 else cond_mul
        if addr == isa.NOP_ADDR or cond == S_ZERO:
            continue
        if (op_add if unit == 0 else op_mul) == 0:
            if unit == 1:                       # the MUL nop's write is unmeasured (semantics.md §4.3)
                report(m, q, qpu[q, PC], R_MUL_NOP_WRITE, addr, 0)
            continue
        any_lane = cond == S_ONES
        for i in range(0 if any_lane else LANES):
            any_lane = any_lane or qpu[q, cond + i] != 0
        poison = poison_add if unit == 0 else poison_mul
        if not any_lane:
            if poison >> LANES:                 # no lane written, but only by undefined flags' say-so
                unwritten(qpu, m, q, ws ^ unit, addr, poison >> LANES)
            continue
        out = add_out if unit == 0 else mul_out
        src, masked = out, False
        if pm and unit == 1 and pack:
            for i in range(LANES):
                qpu[q, S_VALUES + i], qpu[q, S_MASKS + i] = pack_mul(pack, qpu[q, out + i])
            src, masked = S_VALUES, True
        elif not pm and unit == packed_unit and pack:
            if addr >= isa.REGFILE_SIZE:
                report(m, q, qpu[q, PC], R_PACK_OUTSIDE_A, addr, 0)
            float_result = ADD_FLOAT_RESULT[op_add] if unit == 0 else MUL_FLOAT_RESULT[op_mul]
            saturation = ADD_SATURATION[op_add] if unit == 0 else OTHER_OP
            carry = add_c if unit == 0 else mul_c
            for i in range(LANES):
                a = qpu[q, add_a + i] if unit == 0 else 0
                b = qpu[q, add_b + i] if unit == 0 else 0
                qpu[q, S_VALUES + i], qpu[q, S_MASKS + i] = pack_a(pack, qpu[q, out + i], float_result, saturation,
                                                                   a, b, qpu[q, carry + i])
            src, masked = S_VALUES, True
        if not _write(qpu, m, vpm, cache, data, params, q, ws ^ unit, addr, cond, src, masked, poison):
            return False
    return True


# ---- instructions ---------------------------------------------------------------------------------

@jit
def _add_vector(qpu, q: int, code: int, a: int, b: int) -> None:
    """The ADD ALU on 16 lanes into S_ADD_OUT, S_ADD_C. fadd takes two passes: its common case
    on every lane with no branch (the loop vectorises), then, in the rare vector with a lane
    outside it (Inf, NaN, far exponents), the whole vector again through the full fadd."""
    x, y = lane_view(qpu, q, a), lane_view(qpu, q, b)
    out, carry = lane_view(qpu, q, S_ADD_OUT), lane_view(qpu, q, S_ADD_C)
    if code == alu.FADD:
        others = 0
        for i in range(LANES):
            result, common = fadd_common(x[i], y[i])
            out[i], carry[i] = result, alu.positive(result)
            others += not common
        if others:
            for i in range(LANES):
                out[i], carry[i] = add_op(alu.FADD, x[i], y[i])
    else:
        for i in range(LANES):
            out[i], carry[i] = add_op(code, x[i], y[i])


@jit(inline=True)
def _mul_lanes(qpu, q: int, code: int, a: int, b: int) -> None:
    x, y = lane_view(qpu, q, a), lane_view(qpu, q, b)
    out, carry = lane_view(qpu, q, S_MUL_OUT), lane_view(qpu, q, S_MUL_C)
    if code == alu.FMUL:                        # two passes, as fadd in _add_vector
        others = 0
        for i in range(LANES):
            out[i], common = fmul_common(x[i], y[i])
            carry[i] = 0
            others += not common
        if not others:
            return
    for i in range(LANES):
        out[i], carry[i] = mul_op(code, x[i], y[i])


@jit
def _mul_vector(qpu, q: int, code: int, a: int, b: int) -> None:
    """The MUL ALU on 16 lanes into S_MUL_OUT, S_MUL_C; fmul has a loop of its own, in which
    mul_op with a constant code compiles to fmul alone (measured 1.2x on the ALU loop)."""
    if (code == alu.V8MIN or code == alu.V8MAX) and a == b:
        source = lane_view(qpu, q, a)
        for i in range(LANES):                  # the MUL ALU's mov: v8min/v8max of x and x is x, C clear
            qpu[q, S_MUL_OUT + i] = source[i]
            qpu[q, S_MUL_C + i] = 0
    elif code == alu.FMUL:
        _mul_lanes(qpu, q, alu.FMUL, a, b)
    else:
        _mul_lanes(qpu, q, code, a, b)


@jit(inline=True)
def _alu(qpu, m, vpm, cache, data, params, q: int, prog, row: int) -> int:
    pc = qpu[q, PC]
    sig = prog[row, C_SIG]
    small_imm = sig == isa.SIG_SMALL_IMM
    op_add, op_mul = prog[row, C_OP_ADD], prog[row, C_OP_MUL]
    if ADD_RESERVED[op_add]:
        return fail(m, q, pc, E_RESERVED_ADD, op_add, 0)
    raddr_a, raddr_b = prog[row, C_RADDR_A], prog[row, C_RADDR_B]
    if raddr_a == isa.ADDR_MUTEX or (not small_imm and raddr_b == isa.ADDR_MUTEX):
        owner = m[G_MUTEX_OWNER]
        if owner != NO_OWNER and owner != q:
            qpu[q, WAITING] = ST_MUTEX
            return BLOCKED
        m[G_MUTEX_OWNER] = q
    a = _read(qpu, m, vpm, cache, data, params, q, 0, raddr_a, S_A)
    if a < 0:
        return ERROR
    if small_imm:
        b = S_B
        qpu[q, POISON_B] = 0
        for i in range(LANES):
            qpu[q, S_B + i] = SMALL_IMM_BITS[raddr_b]
    elif raddr_b == isa.ADDR_UNIFORM and raddr_a == isa.ADDR_UNIFORM:
        b = a                                   # policy: one uniform per instruction (Linux, qpu-isa.md §20)
        qpu[q, POISON_B] = 0
    else:
        b = _read(qpu, m, vpm, cache, data, params, q, 1, raddr_b, S_B)
        if b < 0:
            return ERROR
    check_reads(qpu, m, q, prog, row, small_imm)
    pm, unpack_code = prog[row, C_PM], prog[row, C_UNPACK]
    # A nop unit reads nothing and gives 0 (with C clear) in every lane.
    add_a, add_b, add_out, add_c = S_ZERO, S_ZERO, S_ZERO, S_ZERO
    poison_add, poison_mul = 0, 0
    if op_add != 0:
        add_a = _operand(qpu, q, prog[row, C_ADD_A], ADD_FLOAT_INPUT[op_add], pm, unpack_code, a, b, S_AA)
        poison_add = mux_poison(qpu, q, prog[row, C_ADD_A])
        add_b = add_a
        if not ADD_UNARY[op_add]:
            add_b = _operand(qpu, q, prog[row, C_ADD_B], ADD_FLOAT_INPUT[op_add], pm, unpack_code, a, b, S_AB)
            poison_add |= mux_poison(qpu, q, prog[row, C_ADD_B])
        if op_add == FTOI:
            for i in range(LANES):
                x = qpu[q, add_a + i]
                if 127 + 31 <= exponent(x) < EXP_SPECIAL and (x & MAGNITUDE) != MEASURED_FTOI_OVERFLOW:
                    # ftoi of |x| >= 2^31 other than the measured ±2^97 (semantics.md §4.1)
                    report(m, q, pc, R_FTOI, 0, 0)
                    break
        _add_vector(qpu, q, op_add, add_a, add_b)
        add_out, add_c = S_ADD_OUT, S_ADD_C
    mul_out, mul_c = S_ZERO, S_ZERO
    if op_mul != 0:
        mul_a = _operand(qpu, q, prog[row, C_MUL_A], MUL_FLOAT_INPUT[op_mul], pm, unpack_code, a, b, S_MA)
        mul_b = _operand(qpu, q, prog[row, C_MUL_B], MUL_FLOAT_INPUT[op_mul], pm, unpack_code, a, b, S_MB)
        _mul_vector(qpu, q, op_mul, mul_a, mul_b)
        poison_mul = mux_poison(qpu, q, prog[row, C_MUL_A]) | mux_poison(qpu, q, prog[row, C_MUL_B])
        mul_out, mul_c = S_MUL_OUT, S_MUL_C
        if small_imm and raddr_b >= isa.SMALL_IMM_ROTATE_BASE:
            amount = _rotate(qpu, q, raddr_b - isa.SMALL_IMM_ROTATE_BASE, prog[row, C_MUL_A], prog[row, C_MUL_B])
            if poison_mul:
                poison_mul = rotate_poison(poison_mul, amount, prog[row, C_MUL_A] < 4 and prog[row, C_MUL_B] < 4)
            if raddr_b == isa.SMALL_IMM_ROTATE_BASE and qpu[q, POISON + ACC + isa.MUX_R5] & 1:
                poison_mul = ALL_LANES          # rotated by an undefined amount
    cond_add = _condition(qpu, m, q, prog[row, C_COND_ADD], S_COND_ADD)
    cond_mul = _condition(qpu, m, q, prog[row, C_COND_MUL], S_COND_MUL)
    poison_add = with_flags(qpu, q, poison_add, cond_add)
    poison_mul = with_flags(qpu, q, poison_mul, cond_mul)
    if prog[row, C_SF]:
        if op_add != 0:                         # §6.2: flags from ADD unless its op is nop
            _set_flags(qpu, q, add_out, add_c, cond_add, False, poison_add)
        else:
            _set_flags(qpu, q, mul_out, mul_c, cond_mul, True, poison_mul)
    if not _write_results(qpu, m, vpm, cache, data, params, q, prog, row, op_add, op_mul, add_out, mul_out, add_c,
                          mul_c, add_a, add_b, cond_add, cond_mul, poison_add, poison_mul):
        return ERROR
    return _signal(qpu, m, q, sig)


@jit(inline=True)
def _rotate(qpu, q: int, amount: int, mul_a: int, mul_b: int) -> int:
    """§9: the MUL result rotates up by n (r5 lane 0 bits 3..0 for code 48); a full 16-lane
    rotation only when both MUL operands are r0..r3, else within each quad. Returns n."""
    n = (qpu[q, REGS + (ACC + isa.MUX_R5) * LANES] & 15) if amount == 0 else amount
    full = mul_a < 4 and mul_b < 4
    for i in range(LANES):
        source = (i - n) % LANES if full else (i & ~3) | ((i - n) & 3)
        qpu[q, S_TMP + i] = qpu[q, S_MUL_OUT + source]
        qpu[q, S_TMP2 + i] = qpu[q, S_MUL_C + source]
    for i in range(LANES):
        qpu[q, S_MUL_OUT + i] = qpu[q, S_TMP + i]
        qpu[q, S_MUL_C + i] = qpu[q, S_TMP2 + i]
    return n


@jit(inline=True)
def _signal(qpu, m, q: int, sig: int) -> int:
    pc = qpu[q, PC]
    if sig == isa.SIG_NONE or sig == isa.SIG_SMALL_IMM:
        return EXECUTED
    if sig == SIG_LDTMU0 or sig == SIG_LDTMU1:
        tmu = sig - SIG_LDTMU0
        count = qpu[q, FIFO_COUNT + tmu]
        if count == 0:
            return fail(m, q, pc, E_LDTMU_EMPTY, tmu, 0)
        if sfu_pending(qpu, q):
            report(m, q, pc, R_SFU_R4_LDTMU, 0, 0)
        head = qpu[q, FIFO_HEAD + tmu]
        entry = tmu * FIFO_CAPACITY + head
        qpu[q, FIFO_HEAD + tmu] = (head + 1) % FIFO_CAPACITY
        qpu[q, FIFO_COUNT + tmu] = count - 1
        stall(qpu, q, ST_TMU, qpu[q, FIFO_READY + entry])  # ldtmu waits for the data (semantics.md §8.2)
        lanes = reserve_pending(qpu, q, 1, KIND_TMU)      # §3: r4 is readable by the next instruction
        if lanes < 0:
            return fail(m, q, pc, E_PENDING_FULL, 0, 0)
        source, out = lane_view(qpu, q, FIFO_VALUES + entry * LANES), lane_view(qpu, q, lanes)
        for i in range(LANES):
            out[i] = source[i]
        return EXECUTED
    if sig == SIG_THREND:
        qpu[q, END_COUNTDOWN] = isa.THREND_DELAY_SLOTS
        return EXECUTED
    if sig == SIG_BKPT:
        return fail(m, q, pc, E_BREAKPOINT, 0, 0)
    return fail(m, q, pc, E_SIGNAL, sig, 0)


@jit
def _load_immediate(qpu, m, vpm, cache, data, params, q: int, prog, row: int, semaphore: bool) -> int:
    """§12: the value goes through both ALUs as a move; sf sets Z/N from it, C cleared. A semaphore
    instruction (§13) moves its own low word."""
    imm = prog[row, P.C_LOW] if semaphore else prog[row, C_IMM]
    mode = 0 if semaphore else prog[row, C_LDI_MODE]
    for i in range(LANES):
        if mode == LDI_PER_ELEMENT_SIGNED or mode == LDI_PER_ELEMENT_UNSIGNED:
            v = per_element_value(imm, i, mode == LDI_PER_ELEMENT_SIGNED) & MASK
        else:
            v = imm
        qpu[q, S_ADD_OUT + i] = v
    cond_add = _condition(qpu, m, q, prog[row, C_COND_ADD], S_COND_ADD)
    cond_mul = _condition(qpu, m, q, prog[row, C_COND_MUL], S_COND_MUL)
    poison_add, poison_mul = with_flags(qpu, q, 0, cond_add), with_flags(qpu, q, 0, cond_mul)
    if prog[row, C_SF]:
        flags_from_add = prog[row, C_COND_ADD] != isa.COND_NEVER
        _set_flags(qpu, q, S_ADD_OUT, S_ZERO, cond_add if flags_from_add else cond_mul, False,
                   poison_add if flags_from_add else poison_mul)
    # The moves are `or` (ADD) and `v8min` (MUL): neither saturates nor gives a float.
    if not _write_results(qpu, m, vpm, cache, data, params, q, prog, row, MOV_ADD, MOV_MUL, S_ADD_OUT, S_ADD_OUT,
                          S_ZERO, S_ZERO, S_ZERO, S_ZERO, cond_add, cond_mul, poison_add, poison_mul):
        return ERROR
    return EXECUTED


@jit
def _semaphore(qpu, m, vpm, cache, data, params, q: int, prog, row: int) -> int:
    """16 four-bit counting semaphores: acquire waits at 0, release waits at 15 (§13)."""
    number = SEMAPHORES + prog[row, C_SEMAPHORE]
    if prog[row, C_SA] == isa.SEMAPHORE_ACQUIRE:
        if m[number] == 0:
            qpu[q, WAITING] = ST_SEMAPHORE
            return BLOCKED
        m[number] -= 1
    else:
        if m[number] == 15:
            qpu[q, WAITING] = ST_SEMAPHORE
            return BLOCKED
        m[number] += 1
    return _load_immediate(qpu, m, vpm, cache, data, params, q, prog, row, True)


@jit
def _branch(qpu, m, vpm, cache, data, params, q: int, prog, row: int) -> int:
    """§14: target = imm (+ branch + 32 if rel) (+ ra[raddr_a] lane 15 if reg); three delay slots;
    the link (branch + 32) and, for an odd raddr_a, the flags are written only if taken."""
    pc = qpu[q, PC]
    cond = prog[row, C_COND_BR]
    if BRANCH_RESERVED[cond]:
        return fail(m, q, pc, E_RESERVED_BRANCH, cond, 0)
    if cond != isa.BRANCH_ALWAYS and qpu[q, POISON_FLAGS]:
        report(m, q, pc, R_UNDEFINED_BRANCH, 0, qpu[q, POISON_FLAGS])
    if prog[row, C_REG] and qpu[q, POISON + REG_A + prog[row, C_RADDR_A]] >> (LANES - 1) & 1:
        report(m, q, pc, R_UNDEFINED_BRANCH, 1, 1 << (LANES - 1))
    if cond != isa.BRANCH_ALWAYS:
        flag = BRANCH_FLAG[cond]
        if flag == C:
            carry_check(qpu, m, q)
        want = BRANCH_WANTS[cond]
        every = BRANCH_ALL[cond] == 1           # all* / any*
        hits = 0
        for i in range(LANES):
            if qpu[q, FLAGS + flag * LANES + i] == want:
                hits += 1
        if not (hits == LANES if every else hits > 0):
            return EXECUTED
    link = pc + isa.BRANCH_LINK_OFFSET
    imm = prog[row, C_IMM]
    target = (imm - (1 << 32) if imm & 0x80000000 else imm) + (link if prog[row, C_REL] else 0)
    if prog[row, C_REG]:
        target += qpu[q, REGS + (REG_A + prog[row, C_RADDR_A]) * LANES + LANES - 1]
    qpu[q, BRANCH_TARGET] = target & MASK
    qpu[q, BRANCH_COUNTDOWN] = isa.BRANCH_DELAY_SLOTS + 1
    for i in range(LANES):
        qpu[q, S_VALUES + i] = link
    ws = prog[row, C_WS]
    for unit in range(2):
        addr = prog[row, C_WADDR_ADD] if unit == 0 else prog[row, C_WADDR_MUL]
        if addr != isa.NOP_ADDR and not _write(qpu, m, vpm, cache, data, params, q, ws ^ unit, addr, S_ONES,
                                               S_VALUES, False, 0):
            return ERROR
    if prog[row, C_RADDR_A] & 1:
        _set_flags(qpu, q, S_VALUES, S_ZERO, S_ONES, False, 0)
    return EXECUTED


@jit(inline=True)
def _advance(qpu, q: int) -> None:
    """After an instruction: r4 results arrive, branches land after their delay slots, thrend's
    delay slots count down (§3, §14, §15)."""
    kept = 0
    for j in range(qpu[q, PENDING_COUNT]):
        qpu[q, PENDING + 2 * j] -= 1
        if qpu[q, PENDING + 2 * j] == 0:
            for i in range(LANES):
                qpu[q, REGS + (ACC + isa.MUX_R4) * LANES + i] = qpu[q, PENDING_VALUES + j * LANES + i]
            qpu[q, LAST_WRITE + ACC + isa.MUX_R4] = qpu[q, INSTRUCTIONS]
            qpu[q, POISON + ACC + isa.MUX_R4] = 0
        else:
            if kept != j:
                qpu[q, PENDING + 2 * kept] = qpu[q, PENDING + 2 * j]
                qpu[q, PENDING + 2 * kept + 1] = qpu[q, PENDING + 2 * j + 1]
                for i in range(LANES):
                    qpu[q, PENDING_VALUES + kept * LANES + i] = qpu[q, PENDING_VALUES + j * LANES + i]
            kept += 1
    qpu[q, PENDING_COUNT] = kept
    landed = False
    if qpu[q, BRANCH_COUNTDOWN] > 0:
        qpu[q, BRANCH_COUNTDOWN] -= 1
        if qpu[q, BRANCH_COUNTDOWN] == 0:
            qpu[q, PC] = qpu[q, BRANCH_TARGET]
            qpu[q, BRANCH_COUNTDOWN] = -1
            landed = True
    if not landed:
        qpu[q, PC] += isa.INSTRUCTION_BYTES
    if qpu[q, END_COUNTDOWN] > 0:
        qpu[q, END_COUNTDOWN] -= 1
    elif qpu[q, END_COUNTDOWN] == 0:
        qpu[q, RUNNING] = 0


@jit(inline=True)
def step(qpu, m, vpm, cache, data, params, q: int, prog, row: int) -> int:
    """Execute one instruction: EXECUTED, BLOCKED (semaphore or mutex) or ERROR."""
    fmt = prog[row, P.C_FORMAT]
    if fmt != P.FMT_BRANCH and (qpu[q, END_COUNTDOWN] >= 0 or prog[row, C_SIG] == SIG_THREND):
        thread_end_checks(qpu, m, q, prog, row, fmt)
    if fmt == P.FMT_ALU:
        status = _alu(qpu, m, vpm, cache, data, params, q, prog, row)
    elif fmt == P.FMT_LDI:
        status = _load_immediate(qpu, m, vpm, cache, data, params, q, prog, row, False)
    elif fmt == P.FMT_SEMAPHORE:
        status = _semaphore(qpu, m, vpm, cache, data, params, q, prog, row)
    elif fmt == P.FMT_BRANCH:
        status = _branch(qpu, m, vpm, cache, data, params, q, prog, row)
    else:
        status = fail(m, q, qpu[q, PC], E_UNDEFINED, prog[row, C_LDI_MODE], 0)
    if status != EXECUTED:
        return status
    if qpu[q, END_COUNTDOWN] == 0 and qpu[q, VPM_READS_LEFT] > 0:
        # §16 rule 21: read exactly the programmed number of vectors before the program ends.
        report(m, q, qpu[q, PC], R_VPM_READS_LEFT, qpu[q, VPM_READS_LEFT], 0)
    qpu[q, INSTRUCTIONS] += 1
    _advance(qpu, q)
    cpi = int(params[P_CPI])
    qpu[q, CYCLE] += cpi
    qpu[q, BUSY] += cpi
    return EXECUTED
