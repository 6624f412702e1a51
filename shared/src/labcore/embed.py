"""Sentence embeddings with unit rows: a cached sentence encoder, or a TF-IDF fallback.

:func:`embed_texts` is the one way the packages embed texts. ``encoder="minilm-l6"`` (or any
name, folder or hub id :func:`labcore.models.load_sentence_encoder` accepts) loads the
encoder once per ``(name, device)`` and caches it; ``encoder="tfidf"`` needs no model: TF-IDF
vectors fitted on the texts themselves, reduced by a truncated SVD (LSA) when the vocabulary
is wide. How the TF-IDF fallback tokenises and when it reduces is set by
:class:`TfidfOptions`, so that each package keeps its own (documented) choice.

torch and sentence-transformers are imported only when an encoder is loaded.

>>> x = embed_texts(["cats purr", "dogs bark", "cats sleep"], encoder="tfidf")
>>> x.shape, bool(np.allclose(np.linalg.norm(x, axis=1), 1.0))
((3, 3), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from labcore.errors import LabcoreError

__all__ = [
    "DEFAULT_ENCODER",
    "TFIDF",
    "TfidfOptions",
    "embed_texts",
    "load_encoder",
    "tfidf_embeddings",
    "unit_rows",
]

#: The default sentence encoder (all-MiniLM-L6-v2 from its offline wheel).
DEFAULT_ENCODER = "minilm-l6"
#: The encoder name of the model-free TF-IDF fallback.
TFIDF = "tfidf"

_NO_WORDS = ("error", "zeros")


@dataclass(frozen=True)
class TfidfOptions:
    """How :func:`tfidf_embeddings` turns texts into vectors.

    Parameters
    ----------
    token_pattern : str
        The word pattern of scikit-learn's ``TfidfVectorizer``. The default counts single
        characters as words (digits and symbols carry meaning in short queries);
        ``r"(?u)\\b\\w\\w+\\b"`` is scikit-learn's own (two characters or more).
    stop_words : {"english"} or None
        Words to drop before weighting (scikit-learn's English list, or none).
    max_dims : int
        At most this many LSA dimensions when the vectors are reduced.
    dense_vocabulary : int or None
        ``None``: reduce to ``d = min(max_dims, n)`` dimensions (n texts) whenever the
        vocabulary has more than d words, so rows have at most d entries. An int: keep the
        raw TF-IDF vectors up to this vocabulary size; above it (and with n > 2 texts) reduce
        to ``min(max_dims, n - 1, vocabulary - 1)`` dimensions.
    no_words : {"error", "zeros"}
        What happens when no text has a word (stop words only, or empty texts): raise a
        LabcoreError, or return one zero column (each text similar to nothing).

    Examples
    --------
    >>> TfidfOptions(stop_words="english", max_dims=256).max_dims
    256
    """

    token_pattern: str = r"(?u)\b\w+\b"
    stop_words: str | None = None
    max_dims: int = 128
    dense_vocabulary: int | None = None
    no_words: str = "error"

    def __post_init__(self) -> None:
        if isinstance(self.max_dims, bool) or not isinstance(self.max_dims, int):
            raise LabcoreError(f"max_dims must be an integer, got {self.max_dims!r}")
        if self.max_dims < 1:
            raise LabcoreError(f"max_dims must be >= 1, got {self.max_dims}")
        if self.dense_vocabulary is not None and (
            isinstance(self.dense_vocabulary, bool)
            or not isinstance(self.dense_vocabulary, int)
            or self.dense_vocabulary < 1
        ):
            raise LabcoreError(
                f"dense_vocabulary must be None or an integer >= 1, got {self.dense_vocabulary!r}"
            )
        if self.no_words not in _NO_WORDS:
            raise LabcoreError(f"no_words must be one of {_NO_WORDS}, got {self.no_words!r}")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """The rows of ``x`` scaled to unit Euclidean norm; a zero row stays zero.

    (Not scikit-learn's ``normalize``: its row norms are summed in another order and differ
    in the last bit, which would change embeddings the packages' results were made with.)

    Parameters
    ----------
    x : ndarray, shape (n, d)

    Returns
    -------
    ndarray, shape (n, d)
        Float rows of norm one, or zero where the row of ``x`` is zero.

    Examples
    --------
    >>> unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # A text with no signal (no known word) has a zero vector: it stays zero, not NaN.
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


@lru_cache(maxsize=4)
def load_encoder(name: str = DEFAULT_ENCODER, device: str = "cpu") -> Any:
    """A sentence-transformers encoder, loaded once per ``(name, device)`` and cached.

    Parameters
    ----------
    name : str
        An offline name (``"minilm-l6"``), a local folder or a hub id, as
        :func:`labcore.models.load_sentence_encoder` accepts.
    device : str
        ``"cpu"``, ``"cuda"``, ``"auto"``...

    Returns
    -------
    SentenceTransformer

    Examples
    --------
    >>> load_encoder("minilm-l6").encode(["a sentence"]).shape  # doctest: +SKIP
    (1, 384)
    """
    from labcore.models import load_sentence_encoder  # imports torch when it runs

    try:
        return load_sentence_encoder(name, device=device)
    except ImportError as exc:
        raise LabcoreError(
            f"the {name!r} encoder needs sentence-transformers (pip install "
            f"sentence-transformers, or the package's [encoder] extra), or use "
            f"encoder='tfidf' ({exc})"
        ) from exc


def tfidf_embeddings(texts: Sequence[str], *, options: TfidfOptions | None = None) -> np.ndarray:
    """Unit-row TF-IDF vectors fitted on ``texts`` themselves, LSA-reduced when wide.

    Parameters
    ----------
    texts : sequence of str
        The vocabulary is fitted on these texts: embed texts that are to be compared in one
        call.
    options : TfidfOptions, optional
        Tokenisation and reduction (default ``TfidfOptions()``).

    Returns
    -------
    ndarray, shape (n, d)
        Float64 rows of unit norm (zero where a text has no word of the vocabulary).

    Examples
    --------
    >>> tfidf_embeddings(["2 + 3", "2 + 4"]).shape  # words "2", "3", "4"
    (2, 2)
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    options = options if options is not None else TfidfOptions()
    texts = list(texts)
    vectorizer = TfidfVectorizer(
        sublinear_tf=True, token_pattern=options.token_pattern, stop_words=options.stop_words
    )
    try:
        tfidf = vectorizer.fit_transform(texts)
    except ValueError:  # an empty vocabulary: no text has a word
        if options.no_words == "zeros":
            return np.zeros((len(texts), 1))
        raise LabcoreError("tf-idf found no words in the texts") from None
    n, vocabulary = tfidf.shape
    if options.dense_vocabulary is None:
        dims = min(options.max_dims, n)
        reduce = vocabulary > dims
    else:
        dims = min(options.max_dims, n - 1, vocabulary - 1)
        reduce = vocabulary > options.dense_vocabulary and n > 2
    if reduce:
        from sklearn.decomposition import TruncatedSVD

        x = TruncatedSVD(n_components=dims, random_state=0).fit_transform(tfidf)
    else:
        x = tfidf.toarray()
    return unit_rows(np.asarray(x, dtype=np.float64))


def _text_list(texts: Any) -> list[str]:
    if isinstance(texts, str | bytes):
        raise LabcoreError("texts must be a sequence of strings, not one string")
    try:
        texts = list(texts)
    except TypeError:
        raise LabcoreError(f"texts must be a sequence of strings, got {texts!r}") from None
    if not texts:
        raise LabcoreError("no texts to embed (got an empty sequence)")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise LabcoreError(f"every text must be a string; text {i} is {type(text).__name__}")
    return texts


def embed_texts(
    texts: Sequence[str],
    *,
    encoder: str | Any = DEFAULT_ENCODER,
    device: str = "cpu",
    batch_size: int = 32,
    tfidf: TfidfOptions | None = None,
) -> np.ndarray:
    """Unit-row embeddings of ``texts``, shape (n, d).

    Parameters
    ----------
    texts : sequence of str
        At least one text.
    encoder : str or object
        ``"minilm-l6"`` (default; all-MiniLM-L6-v2 from its offline wheel), ``"tfidf"`` (no
        model: :func:`tfidf_embeddings`), another name, local folder or hub id for
        sentence-transformers (loaded once and cached by :func:`load_encoder`), or any object
        with an ``encode(list_of_str) -> array`` method.
    device : str
        Where a named encoder runs (``"cpu"``, ``"cuda"``, ``"auto"``).
    batch_size : int
        Texts per forward pass of a named encoder.
    tfidf : TfidfOptions, optional
        Settings of the TF-IDF fallback (ignored by other encoders).

    Returns
    -------
    ndarray, shape (n, d)
        Float64 rows of unit norm (a zero row where a TF-IDF text has no known word).

    Raises
    ------
    LabcoreError
        For texts that are not a non-empty sequence of strings, an encoder that cannot be
        loaded, or an encoder output of the wrong shape or with NaN or infinite values.

    Examples
    --------
    >>> embed_texts(["what is 2 + 2", "capital of France", "2 + 3 = ?"], encoder="tfidf").shape
    (3, 3)
    """
    texts = _text_list(texts)
    if isinstance(encoder, str) and encoder == TFIDF:
        return tfidf_embeddings(texts, options=tfidf)
    if isinstance(encoder, str):
        model = load_encoder(encoder, str(device))
        vectors = model.encode(
            texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True
        )
    elif hasattr(encoder, "encode"):
        vectors = encoder.encode(texts)
    else:
        raise LabcoreError(
            f"encoder must be a name or have an encode() method, got {type(encoder).__name__}"
        )
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise LabcoreError(f"the encoder returned shape {vectors.shape} for {len(texts)} texts")
    if not np.all(np.isfinite(vectors)):
        raise LabcoreError("the encoder returned NaN or infinite values")
    return unit_rows(vectors)
