"""The one seam between the driver and what is behind it: a Pi's kernel, or the simulator.

A backend gives the driver four things: a mailbox transport (the /dev/vcio ioctl), memory mapping
(mmap of /dev/mem at a bus address's physical address), the V3D register window, and the board's
facts (peripheral base, the SDRAM alias and the allocation flags to use). Everything else the driver
does (message bytes, allocation, locking, uniforms, submissions, cache clears) is the same code for both.
"""

from __future__ import annotations

import errno
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vc4common import host

from .mailbox import DEVICE, Mailbox, device_transport


@dataclass(frozen=True)
class HostInfo:
    """Where the ARM finds things (gpu_fft_base.c's host info, read from the device tree)."""

    peripheral_base: int
    peripheral_size: int
    sdram_bus_address: int       # 0x40000000 on Pi 1/Zero, 0xC0000000 on Pi 2/3

    @property
    def memory_flags(self) -> int:
        """Allocation flags: the L2-cached alias where the ARM can see the VideoCore L2 (Pi 1/Zero),
        else the uncached one (ecosystem.md A4 'Which flag hello_fft uses')."""
        if self.sdram_bus_address == host.PI1_SDRAM_BUS_ALIAS:
            return host.MEM_FLAG_L1_NONALLOCATING
        return host.MEM_FLAG_DIRECT


KERNEL_MAILBOX_TIMEOUT_S = 1.0      # raspberrypi/linux#4321: hard-coded in the kernel's firmware driver
PI1_DEFAULTS = HostInfo(host.PI1_PERIPHERAL_BASE, host.PI1_PERIPHERAL_SIZE, host.PI1_SDRAM_BUS_ALIAS)


def read_host_info(device_tree: str | Path = "/proc/device-tree") -> HostInfo:
    """Peripheral base and size from soc/ranges and the SDRAM alias from axi/vc_mem/reg (big-endian
    cells, as bcm_host reads them); Pi 1 values where a file is absent."""
    root = Path(device_tree)

    def cell(path: str, offset: int) -> int | None:
        try:
            data = (root / path).read_bytes()
        except OSError:
            return None
        return int.from_bytes(data[offset:offset + 4], "big") if len(data) >= offset + 4 else None

    base, size = cell("soc/ranges", 4), cell("soc/ranges", 8)
    if base == 0:                                 # ranges with a 64-bit parent address (Pi 4 style)
        base, size = cell("soc/ranges", 8), cell("soc/ranges", 12)
    sdram = cell("axi/vc_mem/reg", 8)
    return HostInfo(base or PI1_DEFAULTS.peripheral_base, size or PI1_DEFAULTS.peripheral_size,
                    sdram or PI1_DEFAULTS.sdram_bus_address)


class Backend:
    """What the driver talks to. Subclasses fill in the four pieces."""

    name = "backend"
    mailbox: Mailbox
    host: HostInfo

    def map_memory(self, bus_address: int, size: int) -> np.ndarray:
        """uint8 array over the SDRAM behind a locked bus address."""
        raise NotImplementedError

    def unmap_memory(self, view: np.ndarray) -> None:
        pass

    def read_register(self, offset: int) -> int:
        raise NotImplementedError

    def write_register(self, offset: int, value: int) -> None:
        raise NotImplementedError

    def run_report(self):
        """The report of the last run where the backend has one (the simulator's timing model)."""
        return None

    def note_uniforms(self, ends: dict[int, int]) -> None:
        """Where the uniforms written for the next run end, by their start (bus addresses): only a
        simulator can use it (strict mode reports a program reading past them); a Pi has no record."""

    def note_direct_timeout(self, n_qpus: int, seconds: float) -> None:
        """The time a direct submission (through the V3D registers) may take: a simulator runs it
        at once when the last program is queued, so it must know its budget first; a Pi polls."""

    def prepare(self) -> None:
        """Make the first run as quick as the next ones (a Pi has nothing to prepare)."""

    def close(self) -> None:
        pass


class SimulatorBackend(Backend):
    """The simulator's firmware and V3D registers behind the same calls."""

    name = "sim"

    def __init__(self, firmware=None, strict: bool = True, seed: int | None = None,
                 wall_timeout: float | None = None):
        from simulator.firmware import Firmware  # the driver depends on the simulator, never back

        self.firmware = firmware or Firmware(strict=strict, seed=seed)
        self.firmware.v3d.wall_timeout = wall_timeout
        board = self.firmware.board
        self.host = HostInfo(board.peripheral_base, board.peripheral_size, board.sdram_bus_alias)
        self.mailbox = Mailbox(self._transport)

    def _transport(self, buffer: np.ndarray) -> None:
        """The firmware's answer, and the kernel's part: its rpi firmware driver waits at most
        1 s for an answer and then fails the ioctl with ETIMEDOUT (ecosystem.md A3 item 4)."""
        self.firmware.property(buffer)
        if self.firmware.last_run_seconds > KERNEL_MAILBOX_TIMEOUT_S:
            raise OSError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))

    def run_report(self):
        return self.firmware.v3d.report

    def note_uniforms(self, ends: dict[int, int]) -> None:
        self.firmware.registers.uniforms_ends = dict(ends)

    def note_direct_timeout(self, n_qpus: int, seconds: float) -> None:
        self.firmware.registers.max_instructions = self.firmware.instruction_budget(n_qpus, seconds)

    def prepare(self) -> None:
        """Compile the simulator's core now (or load it from its disk cache), not in the first run."""
        from simulator.machine import warm_up

        warm_up()

    def map_memory(self, bus_address: int, size: int) -> np.ndarray:
        return self.firmware.memory_view(bus_address, size)

    def read_register(self, offset: int) -> int:
        return self.firmware.registers.read(offset)

    def write_register(self, offset: int, value: int) -> None:
        self.firmware.registers.write(offset, value)


class DeviceBackend(Backend):
    """A Raspberry Pi: /dev/vcio for the mailbox, /dev/mem for memory and the V3D registers."""

    name = "mailbox"

    def __init__(self, vcio: str = DEVICE, mem: str = "/dev/mem", device_tree: str = "/proc/device-tree"):
        transport, self._close_vcio = device_transport(vcio)
        self.mailbox = Mailbox(transport)
        self.host = read_host_info(device_tree)
        self._mem_path = mem
        self._maps: dict[int, mmap.mmap] = {}
        self._registers: np.ndarray | None = None

    def map_memory(self, bus_address: int, size: int) -> np.ndarray:
        physical = bus_address & ~host.BUS_ALIAS_MASK
        mapping = self._mmap(physical, size)
        view = np.frombuffer(mapping, dtype=np.uint8, count=size)
        self._maps[id(view)] = mapping
        return view

    def unmap_memory(self, view: np.ndarray) -> None:
        mapping = self._maps.pop(id(view), None)
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:               # a numpy view still refers to it: the OS unmaps at exit
                pass

    def _registers_view(self) -> np.ndarray:
        if self._registers is None:
            mapping = self._mmap(self.host.peripheral_base + host.V3D_BASE_OFFSET, host.V3D_REGISTER_SPAN)
            self._registers = np.frombuffer(mapping, dtype="<u4")
        return self._registers

    def read_register(self, offset: int) -> int:
        return int(self._registers_view()[offset // 4])

    def write_register(self, offset: int, value: int) -> None:
        self._registers_view()[offset // 4] = value & 0xFFFFFFFF

    def _mmap(self, physical: int, size: int) -> mmap.mmap:
        fd = os.open(self._mem_path, os.O_RDWR | os.O_SYNC)
        try:
            page = mmap.PAGESIZE
            start = physical & ~(page - 1)
            if start != physical:
                raise ValueError(f"physical address {physical:#x} is not page aligned")
            return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=start)
        finally:
            os.close(fd)

    def close(self) -> None:
        for key in list(self._maps):
            mapping = self._maps.pop(key)
            try:
                mapping.close()
            except BufferError:
                pass
        self._close_vcio()


__all__ = ["Backend", "DeviceBackend", "HostInfo", "SimulatorBackend", "read_host_info"]
