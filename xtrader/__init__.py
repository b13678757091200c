"""xtrader: complete, low-latency crypto market-data capture."""

__version__ = "0.1.0"
