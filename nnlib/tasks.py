"""Task lists: how every kernel of nnlib hands out its work to the QPUs.

The host cuts a layer into tasks (a tile, an output row, ...) of a few words each and gives every
program a list; a table holds one [list address, task count] entry per program. A program finds its
entry by an index in its uniforms, or by its qpu_num when the index is -1 (kernels that want a
particular QPU on particular work: the four QPUs of a slice share its uniforms cache). The same
code then runs alone or, later, behind other kernels in one submission.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qpuasm.builtins import dma_h32, h32, vdw_setup_0, vpm_setup

# What one VPM row adds to a generic setup and to a VDW setup (from the assembler's builtins): each
# kernel gives every QPU its own rows.
VPM_ROW = vpm_setup(0, 1, h32(1)) - vpm_setup(0, 1, h32(0))
VDW_ROW = vdw_setup_0(1, 16, dma_h32(1, 0)) - vdw_setup_0(1, 16, dma_h32(0, 0))
USE_QPU_NUMBER = 0xFFFFFFFF
END_LABEL = "done"
BRANCH_DELAY_SLOTS = 3        # instructions a branch runs before it takes effect (qpu-isa.md, branches)


@dataclass(frozen=True)
class Scope:
    """Where a kernel's code goes: the prefix of its labels (so that kernels chained in one program,
    chain.py, do not clash), and whether it ends the program or runs on into what follows."""

    prefix: str = ""
    last: bool = True

    def __call__(self, name: str) -> str:
        """A label's name in this scope."""
        return self.prefix + name

    def end(self) -> str:
        """Every kernel ends here: its DMA stores finished; as the last, the host interrupt raised
        and the program ended. In a chain a barrier or the next kernel follows instead."""
        tail = """        mov -, vw_wait
        mov irq, 1
        nop; nop; thrend
        nop
        nop
""" if self.last else ""
        return f":{self(END_LABEL)}\n{tail}"


ALONE = Scope()               # a kernel that is the whole program


def branch_at_end(lines: list[str], branch: str) -> list[str]:
    """A loop body with its closing branch placed so that the body's last BRANCH_DELAY_SLOTS
    instructions run in the branch's delay slots (they must be plain instructions: no label, no
    other branch)."""
    slots = lines[-BRANCH_DELAY_SLOTS:]
    if len(slots) < BRANCH_DELAY_SLOTS or any(line.lstrip().startswith((":", "br")) for line in slots):
        raise ValueError(f"a branch's delay slots must be {BRANCH_DELAY_SLOTS} plain instructions: {slots}")
    return lines[:-BRANCH_DELAY_SLOTS] + [branch] + slots


def table_prologue(task_pointer: str, tasks_left: str, between: str = "        nop\n        nop",
                   scope: Scope = ALONE) -> str:
    """Assembly: read [table address, index] from the uniforms, leave the index in r1, and load
    this program's [task pointer, task count], going to the scope's end (Scope.end) if it has none.
    `between` (at least two instructions, no uniform reads, r1 kept) fills the wait after the
    uniforms address is written (semantics.md §8.6)."""
    return f"""
        mov r0, unif
        mov.setf r1, unif
        mov.ifn r1, qpu_num
        shl r2, r1, 3
        add unif_addr, r0, r2
{between}
        mov {task_pointer}, unif
        mov.setf {tasks_left}, unif
        brr.allz -, r:{scope(END_LABEL)}
        nop
        nop
        nop
"""


def vector_loads(registers: list[str], tmu: int, depth: int) -> tuple[list[str], str]:
    """Consecutive 64-byte vectors into `registers` by one TMU, `depth` requests in flight (r1: the
    first vector's address per lane, r0: the step). A request reads r1 as the add moves it on; a
    pop's vector is in r4 in the next instruction, which moves it to its register as it pops the
    next. Returns the lines and the last move, for the caller to pair with what follows."""
    lines, popped = [], "nop"
    for v in range(len(registers)):
        if v >= depth:
            lines.append(f"{popped}; ldtmu{tmu}")
            popped = f"mov {registers[v - depth]}, r4"
        lines.append(f"add r1, r1, r0; mov t{tmu}s, r1")
    for v in range(max(0, len(registers) - depth), len(registers)):
        lines.append(f"{popped}; ldtmu{tmu}")
        popped = f"mov {registers[v]}, r4"
    return lines, popped


def run_tasks(drv, code, lists: list[list[list[int]]], words: int, constants: list[int], by_qpu_num: bool,
              blocks: list):
    """Write the task lists and their table, run one program per list with uniforms `constants`
    + [table, index], and return the report. The buffers go into `blocks` for the caller to free."""
    tasks = drv.alloc((max(1, sum(map(len, lists))), words), np.uint32)
    blocks.append(tasks)
    table = drv.alloc((len(lists), 2), np.uint32)
    blocks.append(table)
    row = 0
    for q, items in enumerate(lists):
        table[q] = [tasks.address + 4 * words * row, len(items)]
        for item in items:
            tasks[row] = item
            row += 1
    uniforms = [list(constants) + [table.address, USE_QPU_NUMBER if by_qpu_num else q] for q in range(len(lists))]
    return drv.execute(code, uniforms, n_qpus=len(lists), timeout=10.0)


def deal(items: list, programs: int, cost=None) -> list[list]:
    """Items over at most `programs` programs (fewer when there are fewer items), in order, each to
    the program with the least work so far (by `cost(item)`; round-robin when all cost the same)."""
    count = max(1, min(programs, len(items)))
    if cost is None:
        return [items[q::count] for q in range(count)]
    lists: list[list] = [[] for _ in range(count)]
    work = [0.0] * count
    for item in items:
        q = min(range(count), key=work.__getitem__)
        lists[q].append(item)
        work[q] += cost(item)
    return lists


def keep(blocks: list, array):
    """Note a GPU buffer for free_all, and return it."""
    blocks.append(array)
    return array


def padded_vector(vector, length: int) -> np.ndarray:
    """A float32 vector zero-padded to `length`."""
    out = np.zeros(length, np.float32)
    vector = np.asarray(vector, np.float32).reshape(-1)
    out[:len(vector)] = vector
    return out


def free_all(drv, blocks: list) -> None:
    for block in blocks:
        drv.free(block)
