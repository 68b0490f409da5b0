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
from .diagnose import DriverError

PAGE = 4096


class GPUArray(np.ndarray):
    """A numpy array in GPU memory that knows its bus address (what QPU programs are given).

    Once its block is given back (`Driver.free`, `Driver.close`) the memory may belong to the next
    allocation, or to nothing: indexing, numpy functions and ufuncs, printing and the copying methods
    then raise DriverError instead of reading or writing someone else's bytes. Views share the check.
    """

    address: int
    block: GPUBlock | None

    def __array_finalize__(self, obj) -> None:
        self.block = getattr(obj, "block", None)
        parent = getattr(obj, "address", None)
        if parent is None:
            self.address = 0
            return
        # A view keeps the address of its own first element.
        self.address = parent + (self.__array_interface__["data"][0] - obj.__array_interface__["data"][0])

    def _check_live(self) -> None:
        block = self.block
        if block is not None and block.released:
            raise DriverError(f"this GPU array (bus address {self.address:#x}) was {block.released}: its memory is "
                              "no longer yours; copy what you need (numpy.array(a)) while it is live")

    def __getitem__(self, key):
        self._check_live()
        return super().__getitem__(key)

    def __setitem__(self, key, value) -> None:
        self._check_live()
        super().__setitem__(key, value)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        outputs = kwargs.get("out") or ()
        for x in (*inputs, *outputs):
            if isinstance(x, GPUArray):
                x._check_live()
        plain = tuple(x.view(np.ndarray) if isinstance(x, GPUArray) else x for x in inputs)
        if outputs:
            kwargs["out"] = tuple(x.view(np.ndarray) if isinstance(x, GPUArray) else x for x in outputs)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if outputs:                       # in place (a += 1, out=a): the caller's own arrays
            return outputs[0] if len(outputs) == 1 else outputs
        return result

    def __array_function__(self, func, types, args, kwargs):
        for x in (*args, *kwargs.values()):
            for item in (x if isinstance(x, (list, tuple)) else (x,)):
                if isinstance(item, GPUArray):
                    item._check_live()
        return super().__array_function__(func, types, args, kwargs)

    def __repr__(self) -> str:
        self._check_live()
        return super().__repr__()

    def __str__(self) -> str:
        self._check_live()
        return super().__str__()

    def copy(self, *args, **kwargs):
        self._check_live()
        return super().copy(*args, **kwargs)

    def astype(self, *args, **kwargs):
        self._check_live()
        return super().astype(*args, **kwargs)

    def tobytes(self, *args, **kwargs) -> bytes:
        self._check_live()
        return super().tobytes(*args, **kwargs)

    def tolist(self):
        self._check_live()
        return super().tolist()

    def fill(self, value) -> None:
        self._check_live()
        super().fill(value)

    def addresses(self) -> np.ndarray:
        """The bus address of every element, as uint32, in the array's shape."""
        offsets = np.zeros(self.shape, dtype=np.int64)
        for axis, stride in enumerate(self.strides):
            shape = [1] * self.ndim
            shape[axis] = self.shape[axis]
            offsets = offsets + (np.arange(self.shape[axis], dtype=np.int64) * stride).reshape(shape)
        return (self.address + offsets).astype(np.uint32)


@dataclass(eq=False)
class GPUBlock:
    handle: int
    bus_address: int
    size: int
    view: np.ndarray                  # uint8 over the block, as mapped into this process
    released: str = ""                # once given back: how ("freed", "given back when the driver closed")

    def array(self, shape, dtype, offset: int = 0) -> GPUArray:
        array = np.ndarray.__new__(GPUArray, shape, dtype=dtype, buffer=self.view, offset=offset)
        array.address = self.bus_address + offset
        array.block = self
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

    def block_at(self, bus_address: int) -> GPUBlock | None:
        """The live block that holds a bus address, if one does."""
        for block in self.blocks:
            if block.bus_address <= bus_address < block.bus_address + block.size:
                return block
        return None

    def release(self, block: GPUBlock, how: str = "freed") -> None:
        self.blocks.remove(block)
        block.released = how
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
                self.release(block, "given back when the driver closed")
            except Exception as error:      # keep releasing the others
                errors.append(error)
        return errors


__all__ = ["GPUArray", "GPUBlock", "GPUMemory"]
