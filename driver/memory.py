"""GPU memory: blocks taken from the firmware, and numpy arrays that live in them.

A block is allocated, locked (which fixes its bus address) and mapped into this process through the
mailbox and the backend (the sequence of hello_fft's gpu_fft_alloc, ecosystem.md A4 'Lifecycle'), and
given back in the reverse order. `GPUMemory` keeps every block it handed out so that the driver can
give all of them back on any exit path; a failure half way through taking a block gives back the
part already taken before the error goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import Backend

PAGE = 4096


class GPUArray(np.ndarray):
    """A numpy array in GPU memory that knows its bus address (what QPU programs are given)."""

    address: int

    def __array_finalize__(self, obj) -> None:
        parent = getattr(obj, "address", None)
        if parent is None:
            self.address = 0
            return
        # A view keeps the address of its own first element.
        self.address = parent + (self.__array_interface__["data"][0] - obj.__array_interface__["data"][0])

    def addresses(self) -> np.ndarray:
        """The bus address of every element, as uint32, in the array's shape."""
        offsets = np.zeros(self.shape, dtype=np.int64)
        for axis, stride in enumerate(self.strides):
            shape = [1] * self.ndim
            shape[axis] = self.shape[axis]
            offsets = offsets + (np.arange(self.shape[axis], dtype=np.int64) * stride).reshape(shape)
        return (self.address + offsets).astype(np.uint32)


@dataclass
class GPUBlock:
    handle: int
    bus_address: int
    size: int
    view: np.ndarray                  # uint8 over the block, as mapped into this process

    def array(self, shape, dtype, offset: int = 0) -> GPUArray:
        array = np.ndarray.__new__(GPUArray, shape, dtype=dtype, buffer=self.view, offset=offset)
        array.address = self.bus_address + offset
        return array


class GPUMemory:
    """Every block one driver took from the firmware."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.blocks: list[GPUBlock] = []

    def allocate(self, size: int, alignment: int = PAGE) -> GPUBlock:
        size = max(PAGE, -(-size // PAGE) * PAGE)
        mailbox = self.backend.mailbox
        handle = mailbox.allocate_memory(size, alignment, self.backend.host.memory_flags)
        try:
            bus_address = mailbox.lock_memory(handle)
            try:
                view = self.backend.map_memory(bus_address, size)
            except BaseException:
                mailbox.unlock_memory(handle)
                raise
        except BaseException:
            mailbox.release_memory(handle)
            raise
        block = GPUBlock(handle, bus_address, size, view)
        self.blocks.append(block)
        return block

    def release(self, block: GPUBlock) -> None:
        self.blocks.remove(block)
        self.backend.unmap_memory(block.view)
        mailbox = self.backend.mailbox
        try:
            mailbox.unlock_memory(block.handle)
        finally:
            mailbox.release_memory(block.handle)

    def release_all(self) -> list[Exception]:
        """Give back every block, newest first; collects errors instead of stopping at the first."""
        errors: list[Exception] = []
        for block in reversed(list(self.blocks)):
            try:
                self.release(block)
            except Exception as error:      # keep releasing the others
                errors.append(error)
        return errors


__all__ = ["GPUArray", "GPUBlock", "GPUMemory"]
