"""SMC reward-guided decoding."""

__version__ = "0.1.0"
