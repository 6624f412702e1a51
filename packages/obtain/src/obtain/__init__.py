"""OBTAIN: real-time (causal, streaming) beat tracking.

Onset strength signal -> running tempo -> cumulative beat strength -> causal beat decision
(Mottaghi, Behdin, Esmaeili et al., 2017).

>>> from obtain import BeatTracker, track
"""

from obtain.config import TrackerConfig
from obtain.tracker import Beat, BeatTracker, track

__version__ = "0.1.0"

__all__ = ["Beat", "BeatTracker", "TrackerConfig", "__version__", "track"]
