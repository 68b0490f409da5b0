"""The VideoCore firmware's side of the mailbox property interface, for a simulated board.

`Firmware.property(buffer)` does what the firmware does with the bytes the ARM's ioctl on /dev/vcio
hands it (ecosystem.md A4, semantics.md §9.2): it reads each tag, answers in place, marks each tag
answered and the whole buffer as a success or a parse error. The QPU tags allocate GPU memory from
the board's GPU split of the simulated SDRAM, lock it at a bus address in the alias the flags ask
for, and run QPU programs on the simulated V3D through its user program queue (registers.py).

Policies where the firmware's behaviour is not published:
* execute_qpu clears the V3D's L2 and TMU caches before a run, whatever `noflush` says (that flag
  is read as concerning the VideoCore's own caches); GPU_FFT passes noflush=1 and still reads fresh data.
* execute_qpu returns when every program has ended. The firmware waits for host interrupts; a run
  in which no program raised one is reported (strict: error, else a warning), as it may hang a Pi.
* A run longer than the call's timeout (modeled time at the board's V3D clock) answers
  host.EXECUTE_QPU_TIMEOUT.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from vc4common import host
from vc4common.errors import BudgetExceeded, SimulationError, SimulationWarning
from vc4common.timing import param

from .machine import V3D
from .memory import OFFSET_MASK
from .registers import V3DRegisters

PAGE = 4096


@dataclass(frozen=True)
class Board:
    """What the simulated Raspberry Pi reports about itself (values of a Pi Zero v1.3)."""

    name: str = "Raspberry Pi Zero (simulated)"
    model: int = 0
    revision: int = 0x900093                     # new-style revision code: Zero 1.3, 512 MB, Sony UK
    serial: int = 0x00000000_5A5A0001
    firmware_revision: int = 0x5E0E0E0E          # a build timestamp, as the real firmware answers
    sdram_bytes: int = 512 << 20
    gpu_mem_bytes: int = 128 << 20               # gpu_mem=128, what GPU work on a Pi needs (ecosystem.md A4)
    sdram_bus_alias: int = host.PI1_SDRAM_BUS_ALIAS
    peripheral_base: int = host.PI1_PERIPHERAL_BASE
    peripheral_size: int = host.PI1_PERIPHERAL_SIZE
    clocks_hz: dict[str, int] = field(default_factory=lambda: {
        "arm": 1_000_000_000, "core": 400_000_000, "v3d": 250_000_000, "sdram": 450_000_000})
    temperature_millicelsius: int = 41_234
    max_temperature_millicelsius: int = 85_000
    qpus: int = host.QPUS

    @property
    def vc_memory_base(self) -> int:
        return self.sdram_bytes - self.gpu_mem_bytes


@dataclass
class Allocation:
    offset: int
    size: int
    flags: int
    locks: int = 0


class Firmware:
    """One simulated board's firmware: the mailbox's answers, GPU memory and the QPUs behind them."""

    def __init__(self, board: Board | None = None, strict: bool = True, seed: int | None = None):
        self.board = board or Board()
        self.v3d = V3D(self.board.sdram_bytes, qpus=self.board.qpus, strict=strict, seed=seed)
        self.registers = V3DRegisters(self.v3d)
        self.qpu_enabled = False
        self.allocations: dict[int, Allocation] = {}
        self._next_handle = 1
        # Faults a test may inject, by tag name: the tag then answers as the firmware does on failure.
        self.faults: set[str] = set()
        self.calls: list[str] = []                   # names of the tags answered, in order
        self.last_run_seconds = 0.0                  # modeled time of the run the last message asked for

    # ---- the property interface ------------------------------------------------------------------

    def property(self, buffer: np.ndarray) -> None:
        """Answer a property message in place: `buffer` is the uint32 array the ioctl passes."""
        words = buffer.view("<u4")
        self.last_run_seconds = 0.0
        size = int(words[0])
        if size % 4 or size < 12 or size > 4 * len(words) or words[1] != host.MBOX_REQUEST:
            words[1] = host.MBOX_PARSE_ERROR
            return
        end = size // 4
        i = 2
        while i < end and words[i] != host.MBOX_END_TAG:
            if i + 3 > end:
                words[1] = host.MBOX_PARSE_ERROR
                return
            tag_id, buffer_bytes = int(words[i]), int(words[i + 1])
            values = i + 3
            if buffer_bytes % 4 or values + buffer_bytes // 4 > end:
                words[1] = host.MBOX_PARSE_ERROR
                return
            name = host.MAILBOX_TAG_NAMES.get(tag_id)
            if name is not None:
                tag = host.MAILBOX_TAGS[name]
                request = [int(w) for w in words[values:values + len(tag.request)]]
                answer = self._answer(name, request)
                self.calls.append(name)
                words[values:values + len(answer)] = answer
                words[i + 2] = host.MBOX_TAG_RESPONSE | 4 * len(answer)
            # An unknown tag is left unanswered (its response bit stays clear), as the firmware does.
            i = values + buffer_bytes // 4
        words[1] = host.MBOX_SUCCESS

    def _answer(self, name: str, request: list[int]) -> list[int]:
        b = self.board
        if name in self.faults:
            return self._fault(name, request)
        if name == "get_firmware_revision":
            return [b.firmware_revision]
        if name == "get_board_model":
            return [b.model]
        if name == "get_board_revision":
            return [b.revision]
        if name == "get_board_serial":
            return [b.serial & 0xFFFFFFFF, b.serial >> 32]
        if name == "get_arm_memory":
            return [0, b.vc_memory_base]
        if name == "get_vc_memory":
            return [b.vc_memory_base, b.gpu_mem_bytes]
        if name in ("get_clock_rate", "get_max_clock_rate"):
            names = {v: k for k, v in host.CLOCK_IDS.items()}
            return [request[0], b.clocks_hz.get(names.get(request[0], ""), 0)]
        if name == "get_temperature":
            return [request[0], b.temperature_millicelsius]
        if name == "get_max_temperature":
            return [request[0], b.max_temperature_millicelsius]
        if name == "get_throttled":
            return [0]
        if name == "allocate_memory":
            return [self._allocate(*request)]
        if name == "lock_memory":
            return [self._lock(request[0])]
        if name == "unlock_memory":
            return [self._unlock(request[0])]
        if name == "release_memory":
            return [self._release(request[0])]
        if name == "enable_qpu":
            self.qpu_enabled = bool(request[0])
            return [0]
        if name == "execute_qpu":
            return [self._execute_qpu(*request)]
        return [0xFFFFFFFF]                          # execute_code: the simulator has no VPU

    @staticmethod
    def _fault(name: str, request: list[int]) -> list[int]:
        if name in ("allocate_memory", "lock_memory"):
            return [0]                               # handle 0 / bus address 0: failure
        if name == "execute_qpu":
            return [host.EXECUTE_QPU_TIMEOUT]
        return [0x80000000] * max(1, len(request))   # a non-zero status

    # ---- GPU memory --------------------------------------------------------------------------------

    def _allocate(self, size: int, alignment: int, flags: int) -> int:
        if size == 0:
            return 0
        alignment = max(alignment, PAGE)
        if alignment & (alignment - 1):
            return 0
        size = -(-size // PAGE) * PAGE
        start = self._find_room(size, alignment)
        if start is None:
            return 0
        handle = self._next_handle
        self._next_handle += 1
        self.allocations[handle] = Allocation(start, size, flags)
        if flags & host.MEM_FLAG_ZERO:
            self.v3d.memory.data[start:start + size] = 0
        self._allocated_changed()
        return handle

    def _find_room(self, size: int, alignment: int) -> int | None:
        low, high = self.board.vc_memory_base, self.board.sdram_bytes
        taken = sorted((a.offset, a.offset + a.size) for a in self.allocations.values())
        candidate = -(-low // alignment) * alignment
        for start, end in taken:
            if candidate + size <= start:
                break
            candidate = max(candidate, -(-end // alignment) * alignment)
        return candidate if candidate + size <= high else None

    def _lock(self, handle: int) -> int:
        allocation = self.allocations.get(handle)
        if allocation is None:
            return 0
        allocation.locks += 1
        return self.bus_alias(allocation.flags) | allocation.offset

    def _unlock(self, handle: int) -> int:
        allocation = self.allocations.get(handle)
        if allocation is None or allocation.locks == 0:
            return 1
        allocation.locks -= 1
        return 0

    def _release(self, handle: int) -> int:
        if self.allocations.pop(handle, None) is None:
            return 1
        self._allocated_changed()
        return 0

    def _allocated_changed(self) -> None:
        """Tell the V3D what memory is given out, for strict mode's check of every access."""
        self.v3d.allocated([(a.offset, a.size) for a in self.allocations.values()])

    def bus_alias(self, flags: int) -> int:
        """The alias bits of the bus address a lock answers (semantics.md §9.2)."""
        kind = flags & (host.MEM_FLAG_DIRECT | host.MEM_FLAG_COHERENT)
        return host.BUS_ALIASES[kind]

    def instruction_budget(self, num_qpus: int, seconds: float) -> int:
        """No QPU issues more than one instruction per cycles_per_instruction clocks: past this many
        instructions `seconds` of V3D time have certainly passed."""
        clocks = seconds * self.board.clocks_hz["v3d"]
        return num_qpus * (int(clocks / param("cycles_per_instruction")) + 1000)

    def allocated_bytes(self) -> int:
        return sum(a.size for a in self.allocations.values())

    # ---- running QPU programs ----------------------------------------------------------------------

    def _execute_qpu(self, num_qpus: int, control: int, noflush: int, timeout_ms: int) -> int:
        if not self.qpu_enabled or not 1 <= num_qpus <= self.v3d.qpus:
            return host.EXECUTE_QPU_TIMEOUT           # the firmware cannot start them: it times out
        memory = self.v3d.memory
        pairs = [(memory.read32(control + 8 * q), memory.read32(control + 8 * q + 4)) for q in range(num_qpus)]
        regs = self.registers
        regs.write(host.V3D_REGISTERS["L2CACTL"], host.L2CACTL_CLEAR)
        regs.write(host.V3D_REGISTERS["SLCACTL"], 0xFFFFFFFF)
        before = self.v3d.host_interrupts
        for uniforms, code in pairs:
            regs.write(host.V3D_REGISTERS["SRQUA"], uniforms)
            regs.write(host.V3D_REGISTERS["SRQPC"], code)
        regs.max_instructions = self.instruction_budget(num_qpus, timeout_ms / 1000)
        try:
            regs.run_queue()
        except BudgetExceeded:
            regs.queue.clear()
            self.last_run_seconds = timeout_ms / 1000
            return host.EXECUTE_QPU_TIMEOUT
        except BaseException:               # a failure or Ctrl-C: nothing of this call stays queued
            regs.queue.clear()
            raise
        if self.v3d.host_interrupts == before:
            message = ("execute_qpu: no program wrote host_int; the firmware waits for a host interrupt, "
                       "so this run may hang on a Pi (write a non-zero value to host_int before thrend)")
            if self.v3d.strict:
                raise SimulationError(message)
            warnings.warn(message, SimulationWarning, stacklevel=2)
            self.v3d.warnings.append(message)
        self.last_run_seconds = self.v3d.report.seconds(self.board.clocks_hz["v3d"])
        if self.last_run_seconds * 1000 > timeout_ms:
            return host.EXECUTE_QPU_TIMEOUT
        return 0

    # ---- what the ARM maps ---------------------------------------------------------------------------

    def memory_view(self, bus_address: int, size: int) -> np.ndarray:
        """The bytes of SDRAM behind a bus address, as an mmap of /dev/mem would show them."""
        offset = bus_address & OFFSET_MASK
        if offset + size > self.v3d.memory.size:
            raise ValueError(f"bus address {bus_address:#x} (+{size}) is outside the simulated SDRAM")
        return self.v3d.memory.data[offset:offset + size]


__all__ = ["Allocation", "Board", "Firmware"]
