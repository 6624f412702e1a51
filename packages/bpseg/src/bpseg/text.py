"""Sentence splitting.

pySBD (Sadvilkar and Neumann, 2020) is a rule-based sentence boundary detector (the
"Golden Rules" set: abbreviations, decimals, ellipses, quotations, lists) that needs no
model download, so it works offline. Blank lines always end a sentence: a heading or a
list item without a final period is not glued onto the next paragraph.
"""

from __future__ import annotations

import re
from functools import lru_cache

from labcore.errors import LabcoreError

_BLANK_LINES = re.compile(r"\n\s*\n")
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (whitespace inside each sentence collapsed).

    Parameters
    ----------
    text : str
        Plain text. Paragraphs separated by blank lines are split independently.

    Returns
    -------
    list of str
        The non-empty sentences, in order.

    Examples
    --------
    >>> split_sentences("Dr. Smith arrived at 5 p.m. on Monday. Was it late?\\n\\nYes.")
    ['Dr. Smith arrived at 5 p.m. on Monday.', 'Was it late?', 'Yes.']
    """
    if not isinstance(text, str):
        raise LabcoreError(f"text must be a str, got {type(text).__name__}")
    sentences: list[str] = []
    for paragraph in _BLANK_LINES.split(text):
        paragraph = _SPACE.sub(" ", paragraph).strip()
        if not paragraph:
            continue
        for sentence in _segmenter().segment(paragraph):
            sentence = sentence.strip()
            if sentence:
                sentences.append(sentence)
    return sentences
