"""A local imitation of the Purple Flea services for paper mode and tests.

Routes, fields, status codes, error codes, fees and game maths follow the real services (see
docs/venue.md); money is integer micro-USD in the store and JSON floats on the wire. Everything
random is derived from one seed. `/_sandbox/*` is the harness's own side door (deposits, clock,
faults, Idempotency-Key log) and does not exist on the real services.
"""

from sandbox.clock import Clock, ManualClock, SystemClock
from sandbox.faults import FaultConfig
from sandbox.runner import SERVICE_FACTORIES, SandboxContext, SandboxHandle, main, start_sandbox

__all__ = [
    "SERVICE_FACTORIES",
    "Clock",
    "FaultConfig",
    "ManualClock",
    "SandboxContext",
    "SandboxHandle",
    "SystemClock",
    "main",
    "start_sandbox",
]
