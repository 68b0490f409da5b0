"""Opening a backend, with one clear line and a hint for each way a Pi's set-up goes wrong
(ecosystem.md A3 item 3 and A4): no /dev/vcio, no permission for it or for /dev/mem, the KMS driver
owning the V3D, too little gpu_mem, the kernel's 1-second mailbox cap (the last three are raised by
the mailbox calls themselves, see mailbox.py)."""

from __future__ import annotations

import os

from .backend import Backend, DeviceBackend, SimulatorBackend
from .mailbox import DEVICE, MailboxError

BACKENDS = ("auto", "mailbox", "sim")


class DriverError(RuntimeError):
    """A driver failure a user can act on: one line, with a hint where there is one."""

    def __init__(self, message: str, hint: str = ""):
        self.hint = hint
        super().__init__(f"{message} (hint: {hint})" if hint else message)


def open_backend(backend: str | Backend, *, strict: bool = True, seed: int | None = None,
                 wall_timeout: float | None = None,
                 vcio: str = DEVICE, mem: str = "/dev/mem", need_mem: bool = True) -> Backend:
    """A ready backend: "sim", "mailbox" (a Pi), or "auto" (the Pi's when /dev/vcio exists, else the
    simulator). A Backend instance is taken as it is. `wall_timeout` bounds the wall time of one run
    on the simulator (a Pi's runs are bounded by their own timeout)."""
    if isinstance(backend, Backend):
        return backend
    if backend not in BACKENDS:
        raise DriverError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "sim" or (backend == "auto" and not os.path.exists(vcio)):
        return SimulatorBackend(strict=strict, seed=seed, wall_timeout=wall_timeout)
    return open_device(vcio, mem, need_mem)


def open_device(vcio: str = DEVICE, mem: str = "/dev/mem", need_mem: bool = True) -> DeviceBackend:
    """The Pi's backend; `need_mem` False for mailbox-only work (vc4 info), which needs no root."""
    if not os.path.exists(vcio):
        raise DriverError(f"no {vcio}: this is not a Raspberry Pi, or its mailbox device node is missing",
                          f"on a Pi: sudo mknod {vcio} c 100 0; elsewhere use the simulator: "
                          "backend='sim' (vc4: --backend sim)")
    try:
        device = DeviceBackend(vcio, mem)
    except PermissionError:
        raise DriverError(f"no permission to open {vcio}",
                          "add yourself to the video group (sudo usermod -aG video $USER, then log in again)"
                          ) from None
    except OSError as error:
        raise DriverError(f"cannot open {vcio}: {os.strerror(error.errno or 0)}") from None
    if need_mem and not os.access(mem, os.R_OK | os.W_OK):
        device.close()
        raise DriverError(f"no permission to open {mem}, which maps GPU memory and the V3D registers",
                          "run as root (sudo)")
    try:
        device.mailbox.firmware_revision()
    except MailboxError as error:
        device.close()
        raise DriverError(f"the firmware does not answer on {vcio}: {error}",
                          "update the firmware (sudo apt full-upgrade) and reboot") from None
    return device


__all__ = ["BACKENDS", "DriverError", "open_backend", "open_device"]
