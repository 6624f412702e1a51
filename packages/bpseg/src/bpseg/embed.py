"""Sentence embeddings for BP-Seg: :func:`labcore.embed.embed_texts` with bpseg's TF-IDF settings."""

from __future__ import annotations

from typing import Any

import numpy as np

from labcore.embed import DEFAULT_ENCODER, TFIDF, TfidfOptions, embed_texts

__all__ = ["DEFAULT_ENCODER", "TFIDF", "TFIDF_OPTIONS", "embed"]

#: bpseg's TF-IDF fallback: English stop words dropped, words of two or more characters,
#: vectors kept dense up to a 4096-word vocabulary and LSA-reduced to at most 256
#: dimensions above it; a document with no word at all embeds as zeros.
TFIDF_OPTIONS = TfidfOptions(
    token_pattern=r"(?u)\b\w\w+\b",
    stop_words="english",
    max_dims=256,
    dense_vocabulary=4096,
    no_words="zeros",
)


def embed(
    sentences: list[str], *, encoder: str | Any = DEFAULT_ENCODER, device: str = "cpu"
) -> np.ndarray:
    """Unit-normalised embeddings of ``sentences``, shape (n, d).

    Parameters
    ----------
    sentences : list of str
    encoder : str or object
        ``"minilm-l6"`` (default; all-MiniLM-L6-v2 from its offline wheel), ``"tfidf"``
        (:data:`TFIDF_OPTIONS`), another name/folder/hub id for sentence-transformers, or any
        object with an ``encode(list_of_str) -> array`` method.
    device : str
        Where a named encoder runs.

    Returns
    -------
    ndarray, shape (n, d)

    Examples
    --------
    >>> embed(["cats purr", "dogs bark", "cats sleep"], encoder="tfidf").shape  # 5 words
    (3, 5)
    """
    return embed_texts(sentences, encoder=encoder, device=device, tfidf=TFIDF_OPTIONS)
