"""Differentially private best subset selection by mixed-integer optimization."""

__version__ = "0.1.0"
