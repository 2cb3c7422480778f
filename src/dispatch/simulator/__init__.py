"""SMSC simulator: a trio SMPP 3.4 server for tests, the demo and the bench suite.

``run(config, task_status=...)`` serves until cancelled; ``python -m dispatch.simulator``
runs it from the command line. See ``server`` for behaviour and ``config`` for the knobs.
"""

from dispatch.simulator.config import (
    Account,
    FaultConfig,
    OutcomeRule,
    SimulatorConfig,
    SubmitStatusRule,
    TlsServerConfig,
)
from dispatch.simulator.server import SmscSimulator, run
from dispatch.simulator.stats import SimulatorStats, SubmitRecord, destination_hash

__all__ = ["Account", "FaultConfig", "OutcomeRule", "SimulatorConfig", "SimulatorStats",
           "SmscSimulator", "SubmitRecord", "SubmitStatusRule", "TlsServerConfig", "destination_hash", "run"]
