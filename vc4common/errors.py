"""Errors that cross layers: the simulator raises them, the driver and the command line handle them
(a driver on a Pi imports them from here, not from the simulator)."""

from __future__ import annotations


class SimulationError(RuntimeError):
    """A program did something the hardware does not define, or the simulation cannot continue."""


class WallTimeExceeded(SimulationError):
    """The run took longer than the simulated machine's wall-time bound (V3D.wall_timeout)."""


class BudgetExceeded(SimulationError):
    """The run went past its instruction budget (the programs may still be running on a Pi)."""


class SimulationWarning(UserWarning):
    """Non-strict mode: what strict mode would have raised, once per instruction and rule."""


__all__ = ["BudgetExceeded", "SimulationError", "SimulationWarning", "WallTimeExceeded"]
