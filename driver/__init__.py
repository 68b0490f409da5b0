"""driver: the QPUs of a Raspberry Pi (mailbox, /dev/mem) or of the simulator, behind one API.

    from driver import Driver
    with Driver(backend="sim") as drv: ...
"""

from .backend import Backend, DeviceBackend, SimulatorBackend
from .diagnose import DriverError
from .driver import Driver, GPUProgram
from .mailbox import Mailbox, MailboxError
from .memory import GPUArray
from .v3d import V3D, PerformanceCounters, V3DError

__all__ = ["Backend", "DeviceBackend", "Driver", "DriverError", "GPUArray", "GPUProgram", "Mailbox",
           "MailboxError", "PerformanceCounters", "SimulatorBackend", "V3D", "V3DError"]
