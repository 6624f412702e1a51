"""BP-Seg: unsupervised, non-contiguous text segmentation by belief propagation.

Sentences are embedded (MiniLM, or TF-IDF), a Potts model over their segment labels rewards
similarity to a segment representative, neighbouring sentences that agree and distant but
similar sentences that agree, and loopy belief propagation infers the labels (Li, Behdin,
Pillai et al., 2025; the potentials here are our reconstruction, see the README).

>>> import bpseg
>>> seg = bpseg.segment("Cats purr. Cats nap. Stocks fell. Stocks rose. Cats purr.", k=2,
...                     encoder="tfidf")
>>> seg.labels.tolist(), seg.boundaries
([0, 0, 1, 1, 0], [2, 4])
"""

from bpseg.bp import BPResult, PottsGraph, belief_propagation, mean_field
from bpseg.embed import embed
from bpseg.metrics import clustering_scores, pk, segment_scores, windowdiff
from bpseg.segmenter import (
    BPSegConfig,
    Segment,
    Segmentation,
    build_graph,
    contiguous_decode,
    segment,
    segment_embeddings,
)
from bpseg.text import split_sentences

__version__ = "0.1.0"

__all__ = [
    "BPResult",
    "BPSegConfig",
    "PottsGraph",
    "Segment",
    "Segmentation",
    "__version__",
    "belief_propagation",
    "build_graph",
    "clustering_scores",
    "contiguous_decode",
    "embed",
    "mean_field",
    "pk",
    "segment",
    "segment_embeddings",
    "segment_scores",
    "split_sentences",
    "windowdiff",
]
