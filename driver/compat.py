"""py-videocore's driver API on vc4kit: its programs and their users' host code, unchanged.

Idein's py-videocore (`videocore.driver`) is the field's reference Python QPU toolkit. Its programs
are written against a small driver: `Driver()` as a context manager, `alloc`/`copy`/`array` giving
numpy arrays with `.address` and `.addresses()`, `program(func, *args)` (assembled by py-videocore's
own assembler), `execute(n_threads, program, uniforms, timeout)` and `videocore.v3d`'s register
mapping for the performance counters. This module offers the same calls on vc4kit's `Driver`, so
the same host code runs on the simulator (in CI) or on a Pi through vc4kit's mailbox.

Its memory layout is py-videocore's: one data area and one code area taken at start and handed out
in order; `execute` gives QPU q the address of row q of the uniforms array in place (kernels such
as py-videocore's SGEMM read the address of their own uniforms and rewind the stream to it).

    python -m driver.compat [--backend sim] [--no-strict] script.py [args...]

runs a py-videocore script unchanged: `videocore.driver` becomes this module (and `rpi_vcsm`, which
only exists on a Pi, a module of its cache-mode constants), `videocore.v3d`'s register mapping goes
through vc4kit's V3D register access. py-videocore itself must be importable (PYTHONPATH).
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import types
from math import ceil

import numpy as np

from . import driver as vc4driver
from .backend import SimulatorBackend
from .diagnose import DriverError as Vc4DriverError
from .mailbox import DEVICE
from .memory import GPUArray

DEFAULT_MAX_THREADS = 12
DEFAULT_DATA_AREA_SIZE = 32 * 1024 * 1024
DEFAULT_CODE_AREA_SIZE = 1024 * 1024
# rpi_vcsm's cache modes (py-videocore's `cache_mode`); vc4kit maps GPU memory uncached on the ARM's
# side, so every mode behaves as CACHE_NONE and clean()/invalidate() have nothing to do.
CACHE_NONE, CACHE_HOST, CACHE_VC, CACHE_BOTH = 0, 1, 2, 3
# py-videocore's Register.addr: a word index from the peripheral base, V3D at 0xc00000 (BRCM Table 48).
V3D_WORD_BASE = 0xC00000 >> 2
_SIMULATED: dict[bool, SimulatorBackend] = {}
reports: list = []          # the report of every execute in this process, oldest first (vc4kit's Report)


class DriverError(Vc4DriverError):
    """py-videocore's `DriverError` (also a vc4kit DriverError)."""


class Array(GPUArray):
    """py-videocore's `Array`: a numpy array in GPU memory with `.address` (its first element's bus
    address) and `.addresses()`; `clean`/`invalidate` are the ARM cache operations of rpi_vcsm."""

    def clean(self) -> None:
        pass

    def invalidate(self) -> None:
        pass


class Program:
    """Code placed in the code area (py-videocore's `Program`)."""

    def __init__(self, placed: vc4driver.GPUProgram, code: bytes):
        self.placed = placed
        self.address = placed.address
        self.code = code
        self.size = len(code)


class _Area:
    """A region of one GPU block handed out front to back, as py-videocore's Mempool does."""

    def __init__(self, memory, size: int):
        self.block = memory.allocate(size)
        self.size = size
        self.used = 0

    def take(self, nbytes: int, what: str) -> int:
        if self.used + nbytes > self.size:
            raise DriverError(f"{what} too large: {nbytes} bytes, {self.size - self.used} of {self.size} left")
        offset = self.used
        self.used += nbytes
        return offset


class Driver:
    """py-videocore's `Driver` on vc4kit. `backend` and `strict` are vc4kit's; their defaults come from
    VC4KIT_BACKEND ("auto": a Pi's mailbox where /dev/vcio exists, else the simulator) and VC4KIT_STRICT."""

    def __init__(self, data_area_size: int = DEFAULT_DATA_AREA_SIZE, code_area_size: int = DEFAULT_CODE_AREA_SIZE,
                 max_threads: int = DEFAULT_MAX_THREADS, cache_mode: int = CACHE_NONE, force_driver=None, *,
                 backend: str | None = None, strict: bool | None = None):
        backend = backend or os.environ.get("VC4KIT_BACKEND", "auto")
        if strict is None:
            strict = os.environ.get("VC4KIT_STRICT", "1") != "0"
        if not 1 <= max_threads <= vc4driver.MAX_QPUS:
            raise DriverError(f"max_threads={max_threads}: the V3D has 1 to {vc4driver.MAX_QPUS} QPUs")
        if backend == "sim" or (backend == "auto" and not os.path.exists(DEVICE)):
            # One simulated board per process, as a Pi has one GPU: drivers opened side by side see
            # each other's memory (py-videocore's tests pass addresses from one to another).
            if strict not in _SIMULATED:
                _SIMULATED[strict] = SimulatorBackend(strict=strict)
            backend = _SIMULATED[strict]
        self.vc4 = vc4driver.Driver(backend, strict=strict)
        self.max_threads = max_threads
        self.last_report = None
        try:
            self._data = _Area(self.vc4.memory, data_area_size)
            self._code = _Area(self.vc4.memory, code_area_size)
        except BaseException:
            self.vc4.close()
            raise

    # ---- memory ----------------------------------------------------------------------------------------

    def alloc(self, *args, **kwargs) -> Array:
        """An array in the data area: numpy.ndarray's (shape, dtype) arguments. Not zeroed, as on a Pi."""
        shape = kwargs.pop("shape", args[0] if args else None)
        dtype = np.dtype(kwargs.pop("dtype", args[1] if len(args) > 1 else float))
        if shape is None or kwargs or len(args) > 2:
            raise DriverError("alloc takes (shape, dtype)")
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        offset = self._data.take(nbytes, "Array")
        array = np.ndarray.__new__(Array, shape, dtype=dtype, buffer=self._data.block.view, offset=offset)
        array.address = self._data.block.bus_address + offset
        return array

    def copy(self, arr) -> Array:
        new = self.alloc(np.shape(arr), np.asarray(arr).dtype)
        new[...] = arr
        return new

    def array(self, *args, **kwargs) -> Array:
        source = np.asarray(*args, **kwargs)
        new = self.alloc(source.shape, source.dtype)
        new[...] = source
        return new

    # ---- programs --------------------------------------------------------------------------------------

    def program(self, program, *args, **kwargs) -> Program:
        """Place code in the code area: a py-videocore `@qpu` function (assembled by py-videocore's own
        assembler with *args, **kwargs) or its bytes."""
        if callable(program):
            from videocore.assembler import assemble  # py-videocore's, where its programs come from

            program = assemble(program, *args, **kwargs)
        return self._place(memoryview(program).tobytes())

    def load_bin(self, file, *args, **kwargs) -> Program:
        with open(file, "rb") as f:
            return self._place(f.read())

    def _place(self, code: bytes) -> Program:
        nbytes = 8 * int(ceil(len(code) / 8.0))
        offset = self._code.take(nbytes, "Program")
        view = self._code.block.view[offset:offset + nbytes]
        view[:len(code)] = np.frombuffer(code, dtype=np.uint8)
        words = view.view(np.uint64).copy()
        return Program(vc4driver.GPUProgram(words, self._code.block.bus_address + offset), code)

    # ---- running ---------------------------------------------------------------------------------------

    def execute(self, n_threads: int, program: Program, uniforms=None, timeout: int = 10000) -> None:
        """Run `program` on n_threads QPUs; QPU q reads its uniforms from row q of `uniforms` in place
        (an Array is used where it is, anything else is copied into the data area first). `timeout`
        is in milliseconds, as the mailbox takes it. The run's report is kept in `last_report`."""
        if not 1 <= n_threads <= self.max_threads:
            raise DriverError("n_threads exceeds max_threads")
        if uniforms is None:
            addresses = [0] * n_threads
        else:
            if not isinstance(uniforms, Array):
                uniforms = self.array(uniforms, dtype="u4")
            addresses = [int(a) for a in uniforms.addresses().reshape(n_threads, -1)[:, 0]]
        try:
            self.last_report = self.vc4.execute(program.placed, uniform_addresses=addresses, n_qpus=n_threads,
                                                timeout=timeout / 1000.0, force=True)
            reports.append(self.last_report)
        except Vc4DriverError as error:
            if "timed out" in str(error):
                raise DriverError("QPU execution timeout") from None
            raise

    # ---- closing ---------------------------------------------------------------------------------------

    def close(self) -> None:
        self.vc4.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, exc_type, value, traceback) -> bool:
        self.close()
        return exc_type is None


class RegisterMapping:
    """py-videocore's `v3d.RegisterMapping` through vc4kit's V3D register access: read/write take
    py-videocore's `Register` objects (word index from the peripheral base, and a mask)."""

    def __init__(self, driver: Driver, library_path: str = ""):
        self.driver = driver

    def __enter__(self) -> RegisterMapping:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def _offset(self, register) -> int:
        return 4 * (register.addr - V3D_WORD_BASE)

    def read(self, register) -> int:
        return self.driver.vc4.backend.read_register(self._offset(register))

    def write(self, register, value: int) -> None:
        self.driver.vc4.backend.write_register(self._offset(register), int(value) & 0xFFFFFFFF)


def install() -> None:
    """Make `videocore.driver` this module and route `videocore.v3d`'s register mapping through
    vc4kit; provide `rpi_vcsm`'s constants where the real module (a Pi's) is absent."""
    try:
        import rpi_vcsm  # noqa: F401  (a Pi's own)
    except ImportError:
        vcsm = types.ModuleType("rpi_vcsm")
        vcsm.CACHE_NONE, vcsm.CACHE_HOST, vcsm.CACHE_VC, vcsm.CACHE_BOTH = CACHE_NONE, CACHE_HOST, CACHE_VC, CACHE_BOTH
        sys.modules["rpi_vcsm"] = vcsm
    sys.modules["videocore.driver"] = sys.modules[__name__]
    try:
        import videocore
        import videocore.v3d as v3d
    except ImportError as error:
        raise DriverError(f"py-videocore is not importable ({error})",
                          "put its folder on PYTHONPATH") from None
    videocore.driver = sys.modules[__name__]
    v3d.RegisterMapping = RegisterMapping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driver.compat",
                                     description="Run a py-videocore script unchanged on vc4kit.")
    parser.add_argument("--backend", choices=("auto", "sim", "mailbox"), default=None)
    parser.add_argument("--no-strict", action="store_true", help="simulator: warn instead of stopping")
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    if options.backend:
        os.environ["VC4KIT_BACKEND"] = options.backend
    if options.no_strict:
        os.environ["VC4KIT_STRICT"] = "0"
    try:
        install()
    except DriverError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sys.argv = [options.script, *options.args]
    runpy.run_path(options.script, run_name="__main__")
    for n, report in enumerate(reports):
        kind = "modeled" if report.modeled else "measured"
        print(f"vc4kit: execute {n + 1}: {report.seconds() * 1e3:.3f} ms {kind} at 250 MHz, "
              f"{report.instructions:,} instructions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
