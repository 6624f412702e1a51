"""Evaluation documents: Choi (2000) ``.ref`` files and synthetic multi-topic BBC documents.

A :class:`Document` is a sequence of sentences with one ground-truth label per sentence.
For Choi's data the labels are segment indices (always contiguous); for the BBC documents
they say which source article a sentence came from, so interleaved documents are
non-contiguous: an article's sentences come back after other articles' sentences.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from bpseg.text import split_sentences
from labcore.checks import positive_int
from labcore.errors import LabcoreError

__all__ = [
    "CHOI_RANGES",
    "CHOI_SEPARATOR",
    "Document",
    "bbc_documents",
    "choi_by_range",
    "choi_files",
    "read_choi",
]

#: A line of exactly this text separates two segments of a Choi ``.ref`` file.
CHOI_SEPARATOR = "=" * 10

#: Segment-length ranges of Choi's data, one column of the published tables each.
CHOI_RANGES = ("3-11", "3-5", "6-8", "9-11")


@dataclass(frozen=True)
class Document:
    """Sentences with a ground-truth label per sentence.

    Parameters
    ----------
    name : str
        Identifier, e.g. ``"1/3-5/12"`` for a Choi file or ``"bbc-interleaved-003"``.
    sentences : tuple of str
        The sentences, in order (any sequence is converted to a tuple).
    labels : tuple of int
        Ground truth per sentence: the segment index (Choi) or the source article within
        the document (BBC). Same length as ``sentences``.

    Examples
    --------
    >>> doc = Document("toy", ("A.", "B.", "C.", "D."), (0, 0, 1, 0))
    >>> doc.n, doc.k, doc.contiguous
    (4, 2, False)
    """

    name: str
    sentences: tuple[str, ...]
    labels: tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.sentences, str):
            raise LabcoreError(f"document {self.name!r}: sentences must be a sequence of str")
        sentences = tuple(self.sentences)
        if not all(isinstance(s, str) for s in sentences):
            raise LabcoreError(f"document {self.name!r}: every sentence must be a str")
        labels = []
        for y in self.labels:
            try:
                if isinstance(y, bool):
                    raise TypeError
                labels.append(operator.index(y))
            except TypeError:
                raise LabcoreError(
                    f"document {self.name!r}: labels must be integers, got {y!r}"
                ) from None
        labels = tuple(labels)
        if not sentences:
            raise LabcoreError(f"document {self.name!r} has no sentences")
        if len(labels) != len(sentences):
            raise LabcoreError(
                f"document {self.name!r}: {len(sentences)} sentences but {len(labels)} labels"
            )
        # Normalised to plain tuples of str/int so that documents hash and compare cleanly.
        object.__setattr__(self, "sentences", sentences)
        object.__setattr__(self, "labels", labels)

    @property
    def n(self) -> int:
        """Number of sentences."""
        return len(self.sentences)

    @property
    def k(self) -> int:
        """Number of distinct labels (segments or source articles)."""
        return len(set(self.labels))

    @property
    def contiguous(self) -> bool:
        """True when every label occupies a single run of consecutive sentences."""
        y = np.asarray(self.labels)
        return int(np.count_nonzero(y[1:] != y[:-1])) + 1 == self.k


# ---------------------------------------------------------------------------------------
# Choi (2000)


def _choi_name(path: Path) -> str:
    return "/".join(path.with_suffix("").parts[-3:])


def read_choi(path: str | Path) -> Document:
    """Read one Choi (2000) ``.ref`` file.

    The format: one tokenised sentence per line; segments are separated by lines of exactly
    ten ``=`` (``==========``), and the file starts and ends with such a line. Blank lines
    are skipped and surrounding whitespace is stripped from each sentence.

    Parameters
    ----------
    path : str or Path
        The ``.ref`` file.

    Returns
    -------
    Document
        Named after the last three path parts without suffix (e.g. ``"1/3-5/12"``), with
        labels ``0 .. k-1`` giving each sentence's segment.

    Raises
    ------
    LabcoreError
        If the file is missing, has no separator line, does not start or end with one, has
        an empty segment, or has no sentences.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "0.ref"
    >>> _ = path.write_text("==========\\nA .\\nB .\\n==========\\nC .\\n==========\\n")
    >>> doc = read_choi(path)
    >>> doc.sentences, doc.labels
    (('A .', 'B .', 'C .'), (0, 0, 1))
    """
    path = Path(path)
    if not path.exists():
        raise LabcoreError(f"Choi file not found: {path}")
    if not path.is_file():
        raise LabcoreError(f"Choi path is not a file: {path}")
    lines = [
        (lineno, line.strip())
        for lineno, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        )
        if line.strip()
    ]
    if not lines:
        raise LabcoreError(f"{path}: file is empty")
    is_sep = [text == CHOI_SEPARATOR for _, text in lines]
    if not any(is_sep):
        raise LabcoreError(f"{path}: no separator lines ({CHOI_SEPARATOR}); not a Choi .ref file")
    if all(is_sep):
        raise LabcoreError(f"{path}: no sentences")
    if not is_sep[0]:
        raise LabcoreError(f"{path}:{lines[0][0]}: file does not start with {CHOI_SEPARATOR}")
    if not is_sep[-1]:
        # A missing final separator usually means a truncated file.
        raise LabcoreError(f"{path}:{lines[-1][0]}: file does not end with {CHOI_SEPARATOR}")
    sentences: list[str] = []
    labels: list[int] = []
    segment = -1
    for (lineno, text), sep in zip(lines, is_sep, strict=True):
        if not sep:
            sentences.append(text)
            labels.append(segment)
        elif segment >= 0 and (not labels or labels[-1] != segment):
            raise LabcoreError(f"{path}:{lineno}: empty segment (two separators in a row)")
        else:
            segment += 1
    return Document(_choi_name(path), tuple(sentences), tuple(labels))


def _numeric_key(path: Path) -> tuple[int, int, str]:
    stem = path.stem
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


def choi_files(root: str | Path) -> dict[str, list[Path]]:
    """Find Choi's ``.ref`` files, grouped by subset folder.

    Parameters
    ----------
    root : str or Path
        The ``choi`` folder itself (holding ``1/``, ``2/``, ...) or a folder that contains
        ``choi/``, so both ``data`` and ``data/choi`` work.

    Returns
    -------
    dict of str to list of Path
        Keys ``"<subset>/<range>"`` (e.g. ``"1/3-11"``, ``"1/3-5"``, ..., ``"2/9-11"``) in
        sorted order; each value lists that folder's ``.ref`` files sorted numerically by
        file name (``2.ref`` before ``10.ref``).

    Raises
    ------
    LabcoreError
        If ``root`` does not exist or holds no ``<subset>/<range>/*.ref`` files.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("1/3-5/10.ref", "1/3-5/2.ref", "2/3-5/0.ref"):
    ...     (root / "choi" / name).parent.mkdir(parents=True, exist_ok=True)
    ...     _ = (root / "choi" / name).write_text("==========\\nA .\\n==========\\n")
    >>> {key: [p.name for p in files] for key, files in choi_files(root).items()}
    {'1/3-5': ['2.ref', '10.ref'], '2/3-5': ['0.ref']}
    """
    root = Path(root)
    if not root.exists():
        raise LabcoreError(f"Choi data folder not found: {root}")
    if not root.is_dir():
        raise LabcoreError(f"Choi data path is not a folder: {root}")
    # A folder with choi/ inside is the data root; otherwise root is taken as choi/ itself.
    base = root / "choi" if (root / "choi").is_dir() else root
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in base.glob("*/*") if p.is_dir()):
        files = sorted((f for f in folder.glob("*.ref") if f.is_file()), key=_numeric_key)
        if files:
            found[f"{folder.parent.name}/{folder.name}"] = files
    if not found:
        raise LabcoreError(
            f"no Choi .ref files found under {base} (expected <subset>/<range>/*.ref, "
            "e.g. 1/3-5/0.ref, in the choi folder or in a folder containing choi/)"
        )
    return dict(sorted(found.items()))


def choi_by_range(root: str | Path) -> dict[str, list[Path]]:
    """Choi's files grouped by segment-length range, subsets merged (the published columns).

    Parameters
    ----------
    root : str or Path
        As for :func:`choi_files`.

    Returns
    -------
    dict of str to list of Path
        Keys from :data:`CHOI_RANGES` that are present (in that order), then any other
        ranges found, sorted; each value lists subset 1's files, then subset 2's, and so on.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("1/3-5/0.ref", "2/3-5/0.ref", "1/6-8/0.ref"):
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     _ = (root / name).write_text("==========\\nA .\\n==========\\n")
    >>> {key: len(files) for key, files in choi_by_range(root).items()}
    {'3-5': 2, '6-8': 1}
    """
    merged: dict[str, list[Path]] = {}
    for key, files in choi_files(root).items():
        merged.setdefault(key.split("/", 1)[1], []).extend(files)
    order = [r for r in CHOI_RANGES if r in merged] + sorted(set(merged) - set(CHOI_RANGES))
    return {r: merged[r] for r in order}


# ---------------------------------------------------------------------------------------
# Synthetic multi-topic documents from BBC News


@lru_cache(maxsize=1)
def _bbc():
    from labcore.data import load_topics

    return load_topics("bbc")


@cache
def _article_sentences(text: str) -> tuple[str, ...]:
    # The first line of a BBC article is its title, not a sentence of the body.
    _, _, body = text.partition("\n")
    return tuple(split_sentences(body))


class _TopicPool:
    """Articles of one topic in a shuffled order, cycled, skipping too-short ones.

    Sentence splitting is the slow part, so articles are split only when they are drawn.
    """

    def __init__(self, topic: str, texts: list[str], rng: np.random.Generator, min_len: int):
        self.topic, self.texts, self.rng, self.min_len = topic, texts, rng, min_len
        self.order: list[int] = []
        self.pos = 0

    def draw(self) -> tuple[str, ...]:
        for _ in range(2 * len(self.texts)):
            if self.pos == len(self.order):
                self.order = self.rng.permutation(len(self.texts)).tolist()
                self.pos = 0
            sentences = _article_sentences(self.texts[self.order[self.pos]])
            self.pos += 1
            if len(sentences) >= self.min_len:
                return sentences
        raise LabcoreError(
            f"no BBC article of topic {self.topic!r} has at least {self.min_len} sentences "
            "(lower chunk_sizes)"
        )


def _cut(n: int, lo: int, hi: int, rng: np.random.Generator) -> list[int]:
    """Chunk sizes for an article of ``n >= 2 * lo`` sentences: at least two, each >= lo."""
    sizes: list[int] = []
    left = n
    while left > 0:
        size = int(rng.integers(lo, hi + 1))
        if not sizes:
            # Leave at least one full chunk so that the article can come back later.
            size = min(size, n - lo)
        size = min(size, left)
        sizes.append(size)
        left -= size
    if sizes[-1] < lo:
        tail = sizes.pop()
        sizes[-1] += tail
    return sizes


def _feasible(counts: np.ndarray, last: int) -> bool:
    """Whether the remaining chunks can be ordered with no article twice in a row."""
    total = int(counts.sum())
    if np.any(2 * counts > total + 1):
        return False
    # The last-used article may not come first, so it needs a gap before each chunk.
    return last < 0 or 2 * int(counts[last]) <= total


def _merge_to_feasible(sizes: list[list[int]], rng: np.random.Generator) -> None:
    """Merge neighbouring chunks of an article that has more than the others can separate."""
    counts = np.array([len(s) for s in sizes])
    while not _feasible(counts, -1):
        a = int(np.argmax(counts))
        j = int(rng.integers(len(sizes[a]) - 1))
        sizes[a][j : j + 2] = [sizes[a][j] + sizes[a][j + 1]]
        counts[a] -= 1


def _arrange(counts: list[int], rng: np.random.Generator) -> list[int]:
    """A random order of article ids (``counts[a]`` times article ``a``), none twice in a row.

    Each step picks an article other than the last one with probability proportional to its
    remaining chunks, among the choices that keep the rest arrangeable, so it never gets
    stuck with only the last-used article left.
    """
    left = np.array(counts)
    order: list[int] = []
    last = -1
    for _ in range(int(left.sum())):
        candidates = []
        for a in np.flatnonzero(left):
            if a == last:
                continue
            left[a] -= 1
            if _feasible(left, int(a)):
                candidates.append(int(a))
            left[a] += 1
        weights = left[candidates] / left[candidates].sum()
        last = int(rng.choice(candidates, p=weights))
        left[last] -= 1
        order.append(last)
    return order


def bbc_documents(
    *,
    n_docs: int,
    n_articles: int = 4,
    interleaved: bool = True,
    chunk_sizes: tuple[int, int] = (3, 6),
    max_sentences: int = 18,
    seed: int = 0,
    split: str = "test",
) -> list[Document]:
    """Synthetic multi-topic documents made of BBC News articles.

    Each document takes ``n_articles`` articles from distinct topics of
    ``labcore.data.load_topics("bbc")`` (business, entertainment, politics, sports, tech),
    drops each article's title (its first line), splits the rest into sentences with
    :func:`bpseg.text.split_sentences` and keeps the first ``max_sentences``. Articles with
    fewer than ``2 * chunk_sizes[0]`` sentences are not used. A sentence's label is the index
    of its article within the document (the order the articles were drawn in).

    Within a topic, articles are drawn without replacement (a shuffled list, cycled and
    reshuffled once used up), so documents share articles only when there are more documents
    than articles. The articles depend only on ``seed``, not on ``interleaved``, so the
    contiguous and interleaved versions of a seed hold the same text.

    ``interleaved=False`` places the articles one after the other (``n_articles`` segments).
    ``interleaved=True`` cuts each article into consecutive chunks with sizes drawn uniformly
    from ``chunk_sizes[0] .. chunk_sizes[1]``: the first chunk leaves at least
    ``chunk_sizes[0]`` sentences, and a tail shorter than ``chunk_sizes[0]`` is merged into
    the chunk before it, so every article has at least two chunks and every chunk at least
    ``chunk_sizes[0]`` sentences (at most ``chunk_sizes[0] + chunk_sizes[1] - 1``). The chunks
    are then ordered at random such that each article's chunks keep their order and no two
    neighbouring chunks come from the same article; hence every article comes back after
    another one, each run of equal labels is one chunk, and all sentences are used. When one
    article has more chunks than the others can separate (more than their total plus one;
    never with the defaults, possible with 2 or 3 articles per document), random neighbouring
    chunks of that article are merged first, so its chunks may exceed the size range.

    Parameters
    ----------
    n_docs : int
        Number of documents (at least 1).
    n_articles : int, default 4
        Articles per document, 2 .. number of topics (5).
    interleaved : bool, default True
        Interleave chunks of the articles (non-contiguous labels) or concatenate them.
    chunk_sizes : (int, int), default (3, 6)
        Inclusive range of chunk lengths in sentences, ``1 <= low <= high``.
    max_sentences : int, default 18
        Sentences kept per article (the first ones), at least ``2 * chunk_sizes[0]``.
    seed : int, default 0
        Seed of the numpy random generator; the same seed gives the same documents.
    split : {"test", "train"}, default "test"
        Which part of the BBC corpus to draw articles from.

    Returns
    -------
    list of Document
        Named ``"bbc-interleaved-000"``, ``"bbc-interleaved-001"``, ... (or
        ``"bbc-contiguous-..."``).

    Examples
    --------
    >>> docs = bbc_documents(n_docs=2, seed=0)
    >>> [doc.name for doc in docs], [doc.k for doc in docs]
    (['bbc-interleaved-000', 'bbc-interleaved-001'], [4, 4])
    >>> any(doc.contiguous for doc in docs)
    False
    """
    n_docs = positive_int("n_docs", n_docs)
    n_articles = positive_int("n_articles", n_articles, minimum=2)
    if isinstance(chunk_sizes, str) or not hasattr(chunk_sizes, "__len__") or len(chunk_sizes) != 2:
        raise LabcoreError(
            f"chunk_sizes must be a pair (low, high) of positive integers, got {chunk_sizes!r}"
        )
    lo, hi = (positive_int("chunk_sizes", c) for c in chunk_sizes)
    if lo > hi:
        raise LabcoreError(f"chunk_sizes must satisfy low <= high, got {chunk_sizes!r}")
    max_sentences = positive_int("max_sentences", max_sentences)
    if max_sentences < 2 * lo:
        raise LabcoreError(
            f"max_sentences ({max_sentences}) must be at least 2 * chunk_sizes[0] ({2 * lo}) "
            "so that an article can be cut into two chunks"
        )
    seed = positive_int("seed", seed, minimum=0)
    if split not in ("train", "test"):
        raise LabcoreError(f"split must be 'train' or 'test', got {split!r}")

    corpus = _bbc()
    topics = corpus.topics
    if n_articles > len(topics):
        raise LabcoreError(
            f"n_articles ({n_articles}) exceeds the number of BBC topics ({len(topics)}): "
            "the articles of a document come from distinct topics"
        )
    texts = corpus.test if split == "test" else corpus.train
    topic_of = corpus.test_labels if split == "test" else corpus.train_labels

    # Separate streams: the articles drawn must not depend on how they are arranged.
    select_seq, arrange_seq = np.random.SeedSequence(seed).spawn(2)
    select, arrange = np.random.default_rng(select_seq), np.random.default_rng(arrange_seq)
    pools = [
        _TopicPool(
            topic, [t for t, y in zip(texts, topic_of, strict=True) if y == i], select, 2 * lo
        )
        for i, topic in enumerate(topics)
    ]

    kind = "interleaved" if interleaved else "contiguous"
    documents = []
    for d in range(n_docs):
        chosen = select.choice(len(topics), size=n_articles, replace=False)
        articles = [pools[int(t)].draw()[:max_sentences] for t in chosen]
        if interleaved:
            sizes = [_cut(len(a), lo, hi, arrange) for a in articles]
            _merge_to_feasible(sizes, arrange)
            order = _arrange([len(s) for s in sizes], arrange)
        else:
            sizes = [[len(a)] for a in articles]
            order = list(range(n_articles))
        sentences: list[str] = []
        labels: list[int] = []
        taken = [0] * n_articles  # sentences of each article placed so far
        used = [0] * n_articles  # chunks of each article placed so far
        for a in order:
            size = sizes[a][used[a]]
            sentences.extend(articles[a][taken[a] : taken[a] + size])
            labels.extend([a] * size)
            taken[a] += size
            used[a] += 1
        documents.append(Document(f"bbc-{kind}-{d:03d}", tuple(sentences), tuple(labels)))
    return documents
