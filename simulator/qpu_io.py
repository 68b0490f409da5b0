"""The QPU's I/O: uniforms and code through the slice caches, line fills over the V3D's bus and the
SDRAM port, and the writes to I/O registers (host interrupt, uniforms address, VPM and its setups,
VPM DMA, mutex release, SFU, TMU requests, TMU_NOSWAP), with their timing.

Rules cite ../shared/reference/semantics.md (§N) or qpu-isa.md.
"""

from __future__ import annotations

from qpuasm import isa

from .cache import FROM_MEMORY, FROM_SYSTEM_L2, ICACHE, LINE_BYTES, TMU_HIT, slice_present, slice_read, tmu_read
from .cache import UNIFORMS as UNIFORMS_CACHE
from .jit import jit
from .memory import OFFSET_MASK, OUTSIDE
from .sfu import SFU_LATENCY, sfu
from .state import (
    ACC,
    BUS_PORT,
    BY_TMU,
    BY_UNIFORMS,
    BY_VDR,
    BY_VDW,
    CODE_LINE,
    CYCLE,
    DMA_DONE,
    E_DMA_MODEW,
    E_FIFO_FULL,
    E_IO_WRITE,
    E_MEMORY,
    E_PENDING_FULL,
    E_TEXTURE,
    E_VPM_SIZE,
    E_VR_SETUP,
    ERROR,
    FIFO_CAPACITY,
    FIFO_COUNT,
    FIFO_HEAD,
    FIFO_READY,
    FIFO_VALUES,
    G_DMA_FREE,
    G_HOST_INTERRUPTS,
    G_MUTEX_OWNER,
    G_PAGES_ON,
    G_PORT_COUNT,
    G_SFU_FREE,
    INSTRUCTIONS,
    INTERRUPTS,
    KIND_SFU,
    LANES,
    LAST_WRITE,
    MASK,
    MEMORY_PORT,
    NO_OWNER,
    NOSWAP,
    P_BUS_RATE,
    P_DMA_LATENCY,
    P_DMA_ROW,
    P_ICACHE_PREFETCH,
    P_MEMORY,
    P_MEMORY_RATE,
    P_SFU_BUSY,
    P_SYSTEM_L2,
    P_TMU_HIT,
    P_UNIFORMS_PREFETCH,
    P_VDR_RATE,
    P_VDW_RATE,
    P_VPM_LATENCY,
    PAGE_COUNT,
    PAGE_SHIFT,
    PAGES,
    PC,
    POISON,
    PORT_BOOKINGS,
    PORT_KEEP,
    PORT_SLOTS,
    QPUS_PER_SLICE,
    R_STALE,
    R_STALE_UNIFORM,
    R_TMU_OVERFLOW,
    R_UNALLOCATED,
    R_UNDEFINED_WRITE,
    R_UNIFORMS_PAST_END,
    R_VERTICAL_SUBWORD,
    R_WIDE_PITCH,
    REGS,
    ST_ICACHE,
    ST_SFU,
    ST_UNIFORMS,
    UNIFORMS,
    UNIFORMS_END,
    VDR_PITCH,
    VDR_SETUP,
    VDW_SETUP,
    VDW_STRIDE,
    VPM_READ,
    VPM_READS_LEFT,
    VPM_READY,
    VPM_WRITE,
    fail,
    report,
    reserve_pending,
    stall,
)
from .strict import (
    io_lanes,
    lane_mask,
)
from .tables import (
    VDR_EXT_ID,
    VDR_ID,
    VDR_MPITCHB,
    VDR_MPITCHB_DOCUMENTED,
    VDR_VERT_BIT,
    VDW_HORIZ_BIT,
    VDW_STRIDE_FIELD,
    VPM_SETUP_ID,
)
from .vpm import (
    RESERVED,
    VDR_MODEW,
    VDW_MODEW,
    VPM_NUM,
    generic_advanced,
    get,
    load,
    memory_rows,
    size_reserved,
    store,
    write_vector,
)
from .vpm import count as vpm_count


@jit
def fill_delay(qpu, m, params, q: int, level: int) -> int:
    """Clocks until a line served from `level` reaches QPU q: an L2 or TMU-cache hit takes its
    latency; a line from the system L2 waits for the V3D's bus, one from SDRAM for the bus and the
    SDRAM port (both shared with VPM DMA, timing.py)."""
    now = qpu[q, CYCLE]
    if level == FROM_MEMORY:
        begin = max(transfer(m, BUS_PORT, now, now, LINE_BYTES, params[P_BUS_RATE]),
                    transfer(m, MEMORY_PORT, now, now, LINE_BYTES, params[P_MEMORY_RATE]))
        return begin - now + int(params[P_MEMORY])
    if level == FROM_SYSTEM_L2:
        return transfer(m, BUS_PORT, now, now, LINE_BYTES, params[P_BUS_RATE]) - now + int(params[P_SYSTEM_L2])
    return int(params[P_TMU_HIT + level])


@jit(inline=True)
def _bookings(m, port: int, now: int) -> int:
    """The port's bookings, those that ended PORT_KEEP clocks before `now` dropped (the scheduler
    runs the QPU with the earliest clock, so no later request starts much before `now`): their
    count, which the table keeps."""
    base = PORT_BOOKINGS + port * PORT_SLOTS * 2
    count = 0
    for i in range(m[G_PORT_COUNT + port]):
        if m[base + 2 * i + 1] > now - PORT_KEEP:
            m[base + 2 * count] = m[base + 2 * i]
            m[base + 2 * count + 1] = m[base + 2 * i + 1]
            count += 1
    m[G_PORT_COUNT + port] = count
    return count


@jit(inline=True)
def _occupy(m, port: int, count: int, low: int, high: int) -> None:
    """Book [low, high) on the port: the bookings it overlaps or touches merge into one, kept in
    order of start; when the table is full the earliest booking is forgotten (rare)."""
    base = PORT_BOOKINGS + port * PORT_SLOTS * 2
    kept, at = 0, -1
    for i in range(count):
        s, e = m[base + 2 * i], m[base + 2 * i + 1]
        if e < low or s > high:
            if at < 0 and s > high:
                at = kept
            m[base + 2 * kept] = s
            m[base + 2 * kept + 1] = e
            kept += 1
        else:
            low, high = min(low, s), max(high, e)
    if at < 0:
        at = kept
    if kept == PORT_SLOTS:
        for i in range(kept - 1):
            m[base + 2 * i] = m[base + 2 * i + 2]
            m[base + 2 * i + 1] = m[base + 2 * i + 3]
        kept -= 1
        at = max(at - 1, 0)
    for i in range(kept, at, -1):
        m[base + 2 * i] = m[base + 2 * i - 2]
        m[base + 2 * i + 1] = m[base + 2 * i - 1]
    m[base + 2 * at] = low
    m[base + 2 * at + 1] = high
    m[G_PORT_COUNT + port] = kept + 1


@jit
def transfer(m, port: int, now: int, start: int, nbytes: int, rate: float) -> int:
    """A line of `nbytes` through a port (the V3D's bus to the system, or SDRAM) that moves `rate`
    bytes a clock, in one piece: when it begins, at `start` or later, in the first gap between the
    transfers booked on the port (a DMA transfer that the engine's queue starts later does not hold
    up a line fill before it). `now`: the caller's clock."""
    duration = int(nbytes / rate)
    base = PORT_BOOKINGS + port * PORT_SLOTS * 2
    count = _bookings(m, port, now)
    begin = start
    for i in range(count):
        if begin + duration <= m[base + 2 * i]:
            break
        begin = max(begin, m[base + 2 * i + 1])
    if duration > 0:
        _occupy(m, port, count, begin, begin + duration)
    return begin


@jit
def stream(m, port: int, now: int, start: int, nbytes: int, rate: float) -> int:
    """A DMA transfer's `nbytes` through a port from `start` on, in whatever gaps the bookings leave
    (its rows go one after another, each in the next free clocks): when its last byte is through."""
    duration = int(nbytes / rate)
    base = PORT_BOOKINGS + port * PORT_SLOTS * 2
    count = _bookings(m, port, now)
    t, left, first = start, duration, -1
    for i in range(count):
        s, e = m[base + 2 * i], m[base + 2 * i + 1]
        if e <= t:
            continue
        if s > t:
            if first < 0:
                first = t
            used = min(left, s - t)
            left -= used
            t += used
            if left == 0:
                break
        t = max(t, e)
    if left > 0:
        if first < 0:
            first = t
        t += left
    if duration > 0:
        _occupy(m, port, count, first, t)
    return t


@jit
def slice_cache_read(qpu, m, cache, data, params, q: int, number: int, address: int, prefetch: int,
                      reason: int) -> tuple[int, bool]:
    """A read through a slice's instruction or uniforms cache (`number`): the word and whether it
    is stale; the QPU waits for a missing line. Entering a line starts, with its own fill if it
    missed, the fills of the next `prefetch` lines (policy: sequential prefetch, timing.py)."""
    value, stale, level, ready = slice_read(cache, data, number, address)
    if value == OUTSIDE:
        return OUTSIDE, False
    if level != TMU_HIT:
        cache[ready] = qpu[q, CYCLE] + fill_delay(qpu, m, params, q, level)
    if level != TMU_HIT or address % LINE_BYTES == 0:
        line = address - address % LINE_BYTES
        for k in range(1, prefetch + 1):
            ahead = line + k * LINE_BYTES
            if not slice_present(cache, number, ahead):
                filled, _, ahead_level, ahead_ready = slice_read(cache, data, number, ahead, False)
                if filled != OUTSIDE:
                    cache[ahead_ready] = qpu[q, CYCLE] + fill_delay(qpu, m, params, q, ahead_level)
    stall(qpu, q, reason, cache[ready])
    return value, stale


@jit(inline=True)
def unallocated(m, address: int) -> bool:
    """Whether an access at `address` falls outside the memory the firmware allocated (when known)."""
    if not m[G_PAGES_ON]:
        return False
    page = (address & OFFSET_MASK) >> PAGE_SHIFT
    return page >= PAGE_COUNT or m[PAGES + page] == 0


@jit
def uniform(qpu, m, cache, data, params, q: int) -> int:
    """The next uniform, through the slice's uniforms cache (§8.6); OUTSIDE outside the SDRAM."""
    address = qpu[q, UNIFORMS]
    if unallocated(m, address):
        report(m, q, qpu[q, PC], R_UNALLOCATED, address, BY_UNIFORMS)
    if qpu[q, UNIFORMS_END] and address >= qpu[q, UNIFORMS_END]:
        report(m, q, qpu[q, PC], R_UNIFORMS_PAST_END, address, qpu[q, UNIFORMS_END])
    value, stale = slice_cache_read(qpu, m, cache, data, params, q, UNIFORMS_CACHE + q // QPUS_PER_SLICE, address,
                                     int(params[P_UNIFORMS_PREFETCH]), ST_UNIFORMS)
    if stale:
        report(m, q, qpu[q, PC], R_STALE_UNIFORM, address, 0)
    return value


@jit(inline=True)
def fetch(qpu, m, cache, data, params, q: int, pc: int) -> None:
    """Instruction fetch through the slice's instruction cache (§10), looked up when the PC enters
    another 64-byte line."""
    line = pc - pc % LINE_BYTES
    if line != qpu[q, CODE_LINE]:
        qpu[q, CODE_LINE] = line
        slice_cache_read(qpu, m, cache, data, params, q, ICACHE + q // QPUS_PER_SLICE, line,
                          int(params[P_ICACHE_PREFETCH]), ST_ICACHE)


@jit
def write_io(qpu, m, vpm, cache, data, params, q: int, file: int, addr: int, cond: int, src: int,
              poison: int) -> bool:
    """_write to an I/O address."""
    pc = qpu[q, PC]
    value = qpu[q, src]                         # I/O registers take lane 0 unless said otherwise
    if addr == isa.ADDR_R5:
        # §11: A-space keeps lane 4q of each quad, B-space replicates lane 0.
        qpu[q, LAST_WRITE + ACC + isa.MUX_R5] = qpu[q, INSTRUCTIONS]
        start = REGS + (ACC + isa.MUX_R5) * LANES
        defined = qpu[q, POISON + ACC + isa.MUX_R5]
        for i in range(LANES):
            source = (i & ~3) if file == 0 else 0
            if qpu[q, cond + source]:
                qpu[q, start + i] = qpu[q, src + source]
                defined = (defined & ~(1 << i)) | ((poison >> source & 1) << i)
            if poison >> (LANES + source) & 1:
                defined |= 1 << i
        qpu[q, POISON + ACC + isa.MUX_R5] = defined
        return True
    if addr != isa.ADDR_MUTEX and poison:
        undefined = (poison & lane_mask(qpu, q, cond) | poison >> LANES) & io_lanes(addr)
        if undefined:
            report(m, q, pc, R_UNDEFINED_WRITE, addr + 64 * file, undefined)
    if addr == isa.ADDR_HOST_INT:
        if value:                               # writing 0 does nothing (qpu-isa.md §16 rule 28)
            m[G_HOST_INTERRUPTS] += 1
            qpu[q, INTERRUPTS] += 1             # latched per QPU for V3D_DBQITC (registers.py)
        return True
    if addr == isa.ADDR_UNIFORMS_ADDRESS:
        # B-space is a relative change (unif_addr_rel, §10).
        qpu[q, UNIFORMS] = value if file == 0 else (qpu[q, UNIFORMS] + value) & MASK
        qpu[q, UNIFORMS_END] = 0                # the program reads what it chose from here on
        return True
    if addr == isa.ADDR_VPM:
        if size_reserved(qpu[q, VPM_WRITE]):
            return fail(m, q, pc, E_VPM_SIZE, qpu[q, VPM_WRITE], 0) != ERROR
        write_vector(vpm, qpu[q, VPM_WRITE], qpu[q], src)
        qpu[q, VPM_WRITE] = generic_advanced(qpu[q, VPM_WRITE])
        return True
    if addr == isa.ADDR_VPM_SETUP:
        return vpm_setup(qpu, m, params, q, file, value)
    if addr == isa.ADDR_VPM_DMA:
        # The data moves at once; the timing model says when the transfer is over: the engine (one
        # VDR, one VDW for the whole GPU) takes bytes / bandwidth after the previous transfer.
        setup = qpu[q, VDW_SETUP] if file == 1 else qpu[q, VDR_SETUP]
        vertical = (setup & VDW_HORIZ_BIT) == 0 if file == 1 else (setup & VDR_VERT_BIT) != 0
        if vertical and get(setup, VDW_MODEW if file == 1 else VDR_MODEW) != isa.DMA_MODEW_32:
            report(m, q, pc, R_VERTICAL_SUBWORD, file, 0)    # semantics.md §8.5 [UNKNOWN]
        if m[G_PAGES_ON]:                       # every row of the transfer, not only its start
            rows, row_bytes, step = memory_rows(setup, file == 1, qpu[q, VDW_STRIDE] if file == 1 else
                                                qpu[q, VDR_PITCH])
            for r in range(rows):
                first = value + r * step
                stray = first if unallocated(m, first) else first + row_bytes - 1
                if unallocated(m, stray):
                    report(m, q, pc, R_UNALLOCATED, stray, BY_VDW if file == 1 else BY_VDR)
                    break
        if file == 1:
            moved, outside, port_bytes, rows = store(vpm, data, cache, value, setup, qpu[q, VDW_STRIDE])
            rate = params[P_VDW_RATE]
        else:
            moved, outside, port_bytes, rows = load(vpm, data, cache, value, setup, qpu[q, VDR_PITCH])
            rate = params[P_VDR_RATE]
        if moved == RESERVED:
            return fail(m, q, pc, E_DMA_MODEW, file, 0) != ERROR
        if outside != OUTSIDE:
            return fail(m, q, pc, E_MEMORY, outside, 1) != ERROR
        # Each memory row is a transfer of its own: it takes its bytes at the engine's rate, but at
        # least the per-row cost (timing.py dma_row_clocks).
        start_cycle = max(qpu[q, CYCLE], m[G_DMA_FREE + file])
        done = int(start_cycle + params[P_DMA_LATENCY] + rows * max(params[P_DMA_ROW], moved / rows / rate))
        # What the system L2 did not hold also crosses the one SDRAM port that the caches' line
        # fills use (_fill_delay).
        now = qpu[q, CYCLE]
        through = stream(m, BUS_PORT, now, start_cycle, moved, params[P_BUS_RATE])
        if port_bytes:
            through = max(through, stream(m, MEMORY_PORT, now, start_cycle, port_bytes, params[P_MEMORY_RATE]))
        done = max(done, through + int(params[P_DMA_LATENCY]))
        m[G_DMA_FREE + file] = done
        qpu[q, DMA_DONE + file] = done
        return True
    if addr == isa.ADDR_MUTEX:
        if m[G_MUTEX_OWNER] == q:
            m[G_MUTEX_OWNER] = NO_OWNER
        return True
    if isa.ADDR_SFU_FIRST <= addr <= isa.ADDR_SFU_LAST:
        slice_ = q // QPUS_PER_SLICE            # one SFU per slice, not pipelined (performance.md §4)
        stall(qpu, q, ST_SFU, m[G_SFU_FREE + slice_])
        m[G_SFU_FREE + slice_] = qpu[q, CYCLE] + int(params[P_SFU_BUSY])
        lanes = reserve_pending(qpu, q, SFU_LATENCY, KIND_SFU)
        if lanes < 0:
            return fail(m, q, pc, E_PENDING_FULL, 0, 0) != ERROR
        for i in range(LANES):
            qpu[q, lanes + i] = sfu(addr - isa.ADDR_SFU_FIRST, qpu[q, src + i])
        return True
    if isa.ADDR_TMU_FIRST <= addr <= isa.ADDR_TMU_LAST:
        return tmu_request(qpu, m, cache, data, params, q, addr, src)
    if addr == isa.ADDR_TMU_NOSWAP:
        qpu[q, NOSWAP] = 1 if value != 0 else 0  # only lane 0 counts (semantics.md §6.2)
        return True
    return fail(m, q, pc, E_IO_WRITE, addr, file) != ERROR


@jit
def vpm_setup(qpu, m, params, q: int, file: int, value: int) -> bool:
    """vw_setup (file 1): generic write setup (ID 00), VDW basic (10) or VDW stride (11); vr_setup
    (file 0): generic read setup (ID 00), VDR extended pitch (1001) or VDR basic (1xxx) (§18)."""
    kind = get(value, VPM_SETUP_ID)
    if file == 1:
        if kind == 0:
            qpu[q, VPM_WRITE] = value
        elif kind == isa.VDW_ID_BASIC:
            qpu[q, VDW_SETUP] = value
        else:
            qpu[q, VDW_STRIDE] = get(value, VDW_STRIDE_FIELD)
        return True
    if kind == 0:
        qpu[q, VPM_READ] = value
        qpu[q, VPM_READS_LEFT] = vpm_count(value, VPM_NUM)
        qpu[q, VPM_READY] = qpu[q, CYCLE] + int(params[P_VPM_LATENCY])
    elif get(value, VDR_EXT_ID) == isa.VDR_EXT_ID_VALUE:
        qpu[q, VDR_PITCH] = get(value, VDR_MPITCHB)
        if qpu[q, VDR_PITCH] > VDR_MPITCHB_DOCUMENTED:
            report(m, q, qpu[q, PC], R_WIDE_PITCH, qpu[q, VDR_PITCH], 0)
    elif get(value, VDR_ID):
        qpu[q, VDR_SETUP] = value
    else:
        return fail(m, q, qpu[q, PC], E_VR_SETUP, value, 0) != ERROR
    return True


@jit
def tmu_request(qpu, m, cache, data, params, q: int, addr: int, src: int) -> bool:
    """A write to a TMU S register: a direct lookup of the address in each lane at qpu[q, src] (§8.2)."""
    pc = qpu[q, PC]
    tmu = (addr - isa.ADDR_TMU_FIRST) // 4
    if (addr - isa.ADDR_TMU_FIRST) % 4:
        return fail(m, q, pc, E_TEXTURE, addr, 0) != ERROR
    count = qpu[q, FIFO_COUNT + tmu]
    if count >= isa.TMU_FIFO_SLOTS:
        report(m, q, pc, R_TMU_OVERFLOW, tmu, 0)
    if count >= FIFO_CAPACITY:
        return fail(m, q, pc, E_FIFO_FULL, tmu, 0) != ERROR
    # QPUs 2 and 3 of a slice use the other TMU (its cache) unless TMU_NOSWAP was written; the
    # request FIFO is the same (§8.2).
    swap = 1 if q % QPUS_PER_SLICE >= 2 and not qpu[q, NOSWAP] else 0
    physical = 2 * (q // QPUS_PER_SLICE) + (tmu ^ swap)
    entry = tmu * FIFO_CAPACITY + (qpu[q, FIFO_HEAD + tmu] + count) % FIFO_CAPACITY
    latency = 0
    stale_seen = False
    unallocated_seen = False
    for lane in range(LANES):
        address = qpu[q, src + lane]            # a byte address; the low 2 bits are ignored
        if not unallocated_seen and unallocated(m, address):
            unallocated_seen = True
            report(m, q, pc, R_UNALLOCATED, address, BY_TMU)
        value, stale, level = tmu_read(cache, data, physical, address)
        if value == OUTSIDE:
            return fail(m, q, pc, E_MEMORY, address & ~3, 4) != ERROR
        latency = max(latency, fill_delay(qpu, m, params, q, level))
        if stale and not stale_seen:
            stale_seen = True
            report(m, q, pc, R_STALE, lane, address)
        qpu[q, FIFO_VALUES + entry * LANES + lane] = value
    qpu[q, FIFO_READY + entry] = qpu[q, CYCLE] + latency
    qpu[q, FIFO_COUNT + tmu] = count + 1
    return True
