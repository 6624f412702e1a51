"""Training-free reward-guided LLM decoding by Sequential Monte Carlo.

>>> from smcdecode import SMCDecoder, SMCConfig, KeywordPotential
"""

from smcdecode.potentials import (
    CallablePotential,
    ExactAnswerPotential,
    KeywordPotential,
    LengthPotential,
    Potential,
    RegexPotential,
    TokenPotential,
    parse_reward,
)
from smcdecode.smc import SMCConfig, SMCDecoder, SMCResult
from smcdecode.tasks import chat_prompt

__version__ = "0.1.0"

__all__ = [
    "CallablePotential",
    "ExactAnswerPotential",
    "KeywordPotential",
    "LengthPotential",
    "Potential",
    "RegexPotential",
    "SMCConfig",
    "SMCDecoder",
    "SMCResult",
    "TokenPotential",
    "__version__",
    "chat_prompt",
    "parse_reward",
]
