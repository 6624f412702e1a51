"""SPARTA: differentially private sparse fine-tuning with privately chosen rows."""

__version__ = "0.1.0"
