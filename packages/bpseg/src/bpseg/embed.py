"""Sentence embeddings: MiniLM through sentence-transformers, or TF-IDF as a light fallback."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from labcore.errors import LabcoreError

DEFAULT_ENCODER = "minilm-l6"
TFIDF = "tfidf"
# Above this vocabulary size the TF-IDF vectors are reduced by LSA, keeping memory O(n·d).
_TFIDF_MAX_DENSE = 4096
_LSA_DIMS = 256


@lru_cache(maxsize=4)
def load_encoder(name: str = DEFAULT_ENCODER, device: str = "cpu") -> Any:
    """A cached sentence-transformers encoder (an offline name, a local folder or a hub id)."""
    from labcore import load_sentence_encoder

    try:
        return load_sentence_encoder(name, device=device)
    except ImportError as exc:
        raise LabcoreError(
            f"the {name!r} encoder needs sentence-transformers: pip install 'bpseg[encoder]', "
            f"or use encoder='tfidf' ({exc})"
        ) from exc


def unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # A sentence with no known words has a zero vector: it stays zero (similar to nothing).
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def tfidf_embeddings(sentences: list[str]) -> np.ndarray:
    """Unit-normalised TF-IDF vectors fitted on the document itself (LSA-reduced if wide)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=1)
    try:
        x = vectorizer.fit_transform(sentences)
    except ValueError:  # only stopwords / no tokens at all
        return np.zeros((len(sentences), 1))
    if x.shape[1] > _TFIDF_MAX_DENSE and len(sentences) > 2:
        from sklearn.decomposition import TruncatedSVD

        dims = min(_LSA_DIMS, len(sentences) - 1, x.shape[1] - 1)
        dense = TruncatedSVD(n_components=dims, random_state=0).fit_transform(x)
    else:
        dense = x.toarray()
    return unit_rows(dense.astype(np.float64))


def embed(
    sentences: list[str], *, encoder: str | Any = DEFAULT_ENCODER, device: str = "cpu"
) -> np.ndarray:
    """Unit-normalised embeddings of ``sentences``, shape (n, d).

    Parameters
    ----------
    sentences : list of str
    encoder : str or object
        ``"minilm-l6"`` (default; all-MiniLM-L6-v2 from its offline wheel), ``"tfidf"``,
        another name/folder/hub id for sentence-transformers, or any object with an
        ``encode(list_of_str) -> array`` method.

    Examples
    --------
    >>> embed(["cats purr", "dogs bark", "cats sleep"], encoder="tfidf").shape  # 5 words
    (3, 5)
    """
    if not sentences:
        raise LabcoreError("no sentences to embed")
    if encoder == TFIDF:
        return tfidf_embeddings(list(sentences))
    model = load_encoder(encoder, str(device)) if isinstance(encoder, str) else encoder
    if not hasattr(model, "encode"):
        raise LabcoreError(
            f"encoder must be a name or have an encode() method, got {type(model).__name__}"
        )
    vectors = np.asarray(model.encode(list(sentences)), dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(sentences):
        raise LabcoreError(
            f"the encoder returned shape {vectors.shape} for {len(sentences)} sentences"
        )
    if not np.all(np.isfinite(vectors)):
        raise LabcoreError("the encoder returned NaN or infinite values")
    return unit_rows(vectors)
