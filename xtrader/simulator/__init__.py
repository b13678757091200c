"""A local exchange: real websocket + REST servers on loopback speaking each venue's protocol.

``from xtrader.simulator import Simulator``; see README.md in this package.
"""

from .faults import Faults, parse_faults
from .server import Simulator

__all__ = ["Faults", "Simulator", "parse_faults"]
