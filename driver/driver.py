"""`Driver`: GPU memory as numpy arrays, programs in GPU memory, and running them on the QPUs.

    with Driver(backend="sim") as drv:
        x = drv.alloc((16,), "float32")
        code = drv.program(assembly_text)
        report = drv.execute(code, uniforms=[x.address], n_qpus=1, timeout=1.0)

The same code runs on a Pi (backend "mailbox": /dev/vcio and /dev/mem) and on the simulator
(backend "sim": the simulator's firmware answers the same property-message bytes and V3D register
accesses). Every GPU block and the QPU enable are given back on every way out: close(), the end of
a `with`, an exception or KeyboardInterrupt, SIGTERM, and interpreter shutdown.
"""

from __future__ import annotations

import atexit
import signal
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import qpuasm
from vc4common import host
from vc4common.errors import BudgetExceeded
from vc4common.timing import Report

from .backend import Backend
from .board import board_info
from .diagnose import DriverError, open_backend
from .memory import GPUArray, GPUBlock, GPUMemory
from .v3d import V3D, V3DError

MAX_QPUS = host.QPUS


@dataclass
class GPUProgram:
    """QPU code placed in GPU memory."""

    words: np.ndarray
    address: int                                   # bus address of the first instruction
    labels: dict[str, int] = field(default_factory=dict)
    diagnostics: list = field(default_factory=list)
    block: GPUBlock | None = None
    pointers: tuple[int, ...] = ()                  # positions of the uniforms that are bus addresses

    @property
    def errors(self) -> list:
        return [d for d in self.diagnostics if d.severity == "error"]


def uniform_words(uniforms, n_qpus: int) -> np.ndarray:
    """Uniforms as a (n_qpus, k) uint32 array: one sequence for every QPU or a row per QPU. Python
    ints are taken as 32-bit patterns (addresses, negative numbers), floats as float32 bits."""
    if uniforms is None:
        return np.zeros((n_qpus, 0), dtype=np.uint32)
    if isinstance(uniforms, np.ndarray) and uniforms.dtype.kind in "iuf":
        array = uniforms.astype(np.float32).view(np.uint32) if uniforms.dtype.kind == "f" else \
            (uniforms.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    else:
        rows = list(uniforms)
        nested = bool(rows) and all(isinstance(r, (Sequence, np.ndarray)) for r in rows)
        array = np.array([[_word(v) for v in row] for row in rows] if nested else [_word(v) for v in rows],
                         dtype=np.uint32)
        if nested and array.ndim != 2:
            raise DriverError("uniforms: the rows per QPU must have the same length")
    if array.ndim == 1:
        return np.tile(array, (n_qpus, 1))
    if array.ndim != 2 or array.shape[0] != n_qpus:
        raise DriverError(f"uniforms: a 2-D array needs one row per QPU ({n_qpus}), got shape {array.shape}")
    return array


def _shape(shape) -> tuple[int, ...]:
    """An array shape of non-negative integers, or a DriverError that says what is wrong."""
    dims = (shape,) if isinstance(shape, (int, np.integer, float)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise DriverError(f"alloc: shape {shape!r} is neither a size nor a sequence of sizes") from None
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise DriverError(f"alloc: shape {shape!r} must be sizes that are whole numbers, 0 or more")
    return tuple(int(d) for d in dims)


def _word(value) -> int:
    if isinstance(value, (float, np.floating)):
        if np.isfinite(value) and abs(float(value)) > float(np.finfo(np.float32).max):
            raise DriverError(f"uniforms: {value!r} is beyond float32's range (a uniform is 32 bits)")
        return int(np.float32(value).view(np.uint32))
    if isinstance(value, (int, np.integer)):
        return int(value) & 0xFFFFFFFF
    raise DriverError(f"uniforms: {value!r} is neither a number nor an address")


def _positive_seconds(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise DriverError(f"{name}={value!r}: a finite number of seconds greater than 0")
    return float(value)


class Driver:
    """Talks to the QPUs of a Pi or of the simulator; see the module's docstring."""

    def __init__(self, backend: str | Backend = "auto", *, strict: bool = True, seed: int | None = None,
                 wall_timeout: float | None = None):
        """`wall_timeout`: seconds of wall time one simulated run may take (None: no bound); on the
        simulator `execute`'s timeout is modeled V3D time, which a spinning kernel takes long to use."""
        if wall_timeout is not None:
            wall_timeout = _positive_seconds("wall_timeout", wall_timeout)
        self.backend = open_backend(backend, strict=strict, seed=seed, wall_timeout=wall_timeout)
        self.memory = GPUMemory(self.backend)
        self.v3d = V3D(self.backend)
        self.closed = False
        self.last_report: Report | None = None
        try:
            self.backend.mailbox.enable_qpu(True)
        except BaseException:
            self.backend.close()
            raise
        _live_drivers.add(self)
        _install_sigterm_handler()

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # ---- memory --------------------------------------------------------------------------------------

    def alloc(self, shape, dtype="float32", *, align: int = 4096) -> GPUArray:
        """A zeroed numpy array in GPU memory, of a numeric dtype (the bytes a QPU can read and write)."""
        self._check_open()
        try:
            dtype = np.dtype(dtype)
        except TypeError as error:
            raise DriverError(f"alloc: {dtype!r} is not a numpy dtype ({error})") from None
        if dtype.kind not in "biufc" or dtype.hasobject:
            raise DriverError(f"alloc: dtype {dtype} cannot live in GPU memory (numbers only: bool, int, uint, "
                              "float, complex)")
        shape = _shape(shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        block = self.memory.allocate(max(nbytes, 1), align)
        array = block.array(shape, dtype)
        array[...] = 0
        return array

    def copy(self, array) -> GPUArray:
        """A GPU-memory copy of a numpy array (or anything numpy.asarray takes)."""
        source = np.asarray(array)
        out = self.alloc(source.shape, source.dtype)
        out[...] = source
        return out

    def free(self, array: GPUArray) -> None:
        """Give an array's block back before close() would."""
        block = self.memory.block_at(array.address)
        if block is None:
            raise DriverError(f"free: no GPU block of this driver holds bus address {array.address:#x}")
        if array.address != block.bus_address:
            raise DriverError(f"free: this is a view {array.address - block.bus_address} bytes into an "
                              "allocation; free the array alloc or copy returned (a view cannot free its base)")
        self.memory.release(block)

    # ---- programs ------------------------------------------------------------------------------------

    def program(self, code, *, filename: str = "<program>", pointers: Sequence[int] = (), **defines) -> GPUProgram:
        """Place code in GPU memory: assembly text, a qpuasm.Program, or raw 64-bit words. The code is
        checked for hazards (qpuasm.check); execute() refuses code with errors unless force=True.
        `pointers` declares which uniforms (by position in each QPU's list) the kernel uses as bus
        addresses: execute() then refuses a value there that is in no live allocation of this
        driver, since on a Pi the kernel would read or write the ARM's memory through it."""
        self._check_open()
        if isinstance(code, GPUProgram):
            return code
        pointers = tuple(pointers)
        if not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) and p >= 0 for p in pointers):
            raise DriverError(f"program: pointers={pointers!r} must be positions in the uniforms (0, 1, ...)")
        pointers = tuple(map(int, pointers))
        if isinstance(code, str):
            code = qpuasm.assemble(code, filename=filename, defines=defines or None)
        labels = dict(code.labels) if isinstance(code, qpuasm.Program) else {}
        words = np.asarray(code.words if isinstance(code, qpuasm.Program) else code, dtype=np.uint64).ravel()
        if len(words) == 0:
            raise DriverError("program: no instructions")
        block = self.memory.allocate(8 * len(words))
        block.array((len(words),), np.uint64)[:] = words
        return GPUProgram(words, block.bus_address, labels, qpuasm.check(words), block, pointers)

    # ---- running -------------------------------------------------------------------------------------

    def execute(self, program, uniforms=None, n_qpus: int = 1, timeout: float = 1.0, *, force: bool = False,
                direct: bool = False, uniform_addresses: Sequence[int] | None = None) -> Report:
        """Run `program` on n_qpus QPUs, each with its uniforms; returns the run's report (modeled on
        the simulator, measured on a Pi). `direct` submits through the V3D registers, not the mailbox.
        `uniform_addresses` (instead of `uniforms`) gives each QPU the bus address of uniforms already
        in GPU memory, for kernels that read or rewind their own uniform stream."""
        self._check_open()
        if not 1 <= n_qpus <= MAX_QPUS:
            raise DriverError(f"n_qpus={n_qpus}: the V3D has 1 to {MAX_QPUS} QPUs")
        timeout = _positive_seconds("timeout", timeout)
        placed_here = not isinstance(program, GPUProgram)   # code placed for this call goes with it
        code = self.program(program)
        try:
            return self._execute(code, uniforms, n_qpus, timeout, force, direct, uniform_addresses)
        finally:
            if placed_here and code.block is not None and code.block in self.memory.blocks:
                self.memory.release(code.block)

    def _execute(self, code: GPUProgram, uniforms, n_qpus: int, timeout: float, force: bool, direct: bool,
                 uniform_addresses) -> Report:
        if code.errors and not force:
            first = code.errors[0]
            raise DriverError(f"program refused: {len(code.errors)} hazard error(s), first: {first} "
                              "(execute(..., force=True) runs it anyway)")
        if uniform_addresses is not None:
            if uniforms is not None or len(uniform_addresses) != n_qpus:
                raise DriverError(f"uniform_addresses: one address per QPU ({n_qpus}), and no uniforms beside it")
            table = np.zeros((n_qpus, 0), dtype=np.uint32)
        else:
            table = uniform_words(uniforms, n_qpus)
            self._check_pointers(code.pointers, table)
        k = table.shape[1]
        block = self.memory.allocate(4 * (n_qpus * k + 2 * n_qpus))
        try:
            words = block.array((n_qpus * (k + 2),), np.uint32)
            words[:n_qpus * k] = table.ravel()
            message = words[n_qpus * k:].reshape(n_qpus, 2)
            if uniform_addresses is None:
                message[:, 0] = block.bus_address + 4 * k * np.arange(n_qpus)     # uniforms address of QPU q
            else:
                message[:, 0] = [int(a) & 0xFFFFFFFF for a in uniform_addresses]
            message[:, 1] = code.address
            jobs = [(int(u), int(c)) for u, c in message]
            # Uniforms written here end after k words (a stream placed by the caller: unknown).
            self.backend.note_uniforms({} if uniform_addresses is not None else
                                       {int(u): int(u) + 4 * k for u, _ in message})
            start = time.perf_counter()
            if direct:
                self.backend.note_direct_timeout(n_qpus, timeout)
                try:
                    self.v3d.submit_direct(jobs, timeout)
                except V3DError as error:
                    raise DriverError(f"direct submission: {error}") from None
                except BudgetExceeded:
                    raise DriverError(f"direct submission: the programs were still running after {timeout} s "
                                      "(modeled V3D time); raise timeout= or check the program ends") from None
            else:
                status = self.backend.mailbox.execute_qpu(n_qpus, block.bus_address + 4 * n_qpus * k, False,
                                                          max(1, int(timeout * 1000)))
                if status == host.EXECUTE_QPU_TIMEOUT:
                    raise DriverError(f"QPU execution timed out after {timeout} s (execute_qpu answered "
                                      f"{status:#x}); raise timeout= or check the program ends")
            elapsed = time.perf_counter() - start
        finally:
            self.backend.note_uniforms({})
            self.memory.release(block)
        self.last_report = self.backend.run_report() or self._measured_report(elapsed)
        return self.last_report

    def _check_pointers(self, pointers: tuple[int, ...], table: np.ndarray) -> None:
        """Each declared pointer uniform names a live allocation of this driver."""
        for position in pointers:
            if position >= table.shape[1]:
                raise DriverError(f"uniform {position} is declared a pointer, but each QPU is given only "
                                  f"{table.shape[1]} uniforms")
            for q, address in enumerate(table[:, position]):
                if self.memory.block_at(int(address)) is None:
                    raise DriverError(f"uniform {position} of QPU {q} is {int(address):#010x}, declared a pointer but "
                                      "in no live GPU allocation of this driver: on a Pi the kernel would reach the "
                                      "ARM's memory through it (pass an array's .address)")

    def _measured_report(self, seconds: float) -> Report:
        clock = self.backend.mailbox.clock_rate("v3d") or 250_000_000
        return Report(int(seconds * clock), [], {}, modeled=False)

    # ---- facts ---------------------------------------------------------------------------------------

    def info(self) -> dict[str, object]:
        """Board and firmware facts from the mailbox (driver.board.board_info)."""
        return {"backend": self.backend_name, **board_info(self.backend.mailbox)}

    # ---- closing -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Give back every GPU block and disable the QPUs; safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        _live_drivers.discard(self)
        errors = self.memory.release_all()
        try:
            self.backend.mailbox.enable_qpu(False)
        except Exception as error:
            errors.append(error)
        self.backend.close()
        if errors:
            raise DriverError(f"close: {len(errors)} release(s) failed, first: {errors[0]}")

    def _check_open(self) -> None:
        if self.closed:
            raise DriverError("the driver is closed")

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            try:
                self.close()
            except Exception:
                pass


# ---- every way out -----------------------------------------------------------------------------------
_live_drivers: weakref.WeakSet[Driver] = weakref.WeakSet()


@atexit.register
def _close_live_drivers() -> None:
    for driver in list(_live_drivers):
        try:
            driver.close()
        except Exception:
            pass


_sigterm_installed = False


def _install_sigterm_handler() -> None:
    """SIGTERM's default kills the process without unwinding: turn it into SystemExit so that `with`
    blocks and atexit give GPU memory back. Only where nobody installed a handler already."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    _sigterm_installed = True


def _on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


__all__ = ["Driver", "DriverError", "GPUArray", "GPUProgram", "uniform_words"]
