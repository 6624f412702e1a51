"""Predicted quality and cost of new queries, learned from a table of past outcomes.

Quality comes from a quality predictor (kNN or logistic regression on query embeddings);
cost from the mean cost of each model on the ``n_neighbors`` most similar past queries
(output length, hence cost, depends on the query). Both use the same embeddings.
"""

from __future__ import annotations

import numpy as np

from batchroute.data import TFIDF_OPTIONS, RoutingData, embed_queries
from batchroute.predictors import KNNPredictor, LogisticPredictor
from labcore.embed import unit_rows
from labcore.errors import LabcoreError


class ScoreModel:
    """``score(queries) -> (quality (n, M), cost (n, M))`` for the models of a table.

    Parameters
    ----------
    data : RoutingData
        Past queries (with their text) and each model's correctness and cost on them.
    predictor : {"knn", "logistic"}
    encoder : str
        ``"minilm-l6"`` or ``"tfidf"``. With tf-idf the vocabulary is the training
        queries'.
    models : sequence of str, optional
        The models to score, in this order (default: the table's).
    """

    def __init__(
        self,
        data: RoutingData,
        *,
        predictor: str = "knn",
        encoder: str = "minilm-l6",
        models=None,
        n_neighbors: int = 25,
    ):
        if data.queries is None:
            raise LabcoreError("the training table has no query texts (a 'prompt' column)")
        names = tuple(models) if models is not None else data.models
        missing = [m for m in names if m not in data.models]
        if missing:
            raise LabcoreError(
                f"models {missing} are not in the training table (it has {list(data.models)})"
            )
        cols = [data.models.index(m) for m in names]
        self.models = names
        self.encoder = encoder
        self._queries = list(data.queries)
        if encoder == "tfidf":
            from sklearn.decomposition import TruncatedSVD
            from sklearn.feature_extraction.text import TfidfVectorizer

            # Single characters count as words ("2 + 3"), as in batchroute.data; the vectors
            # are reduced by LSA fitted on the training queries to keep memory small.
            self._tfidf = TfidfVectorizer(
                sublinear_tf=True, token_pattern=TFIDF_OPTIONS.token_pattern
            )
            tf = self._tfidf.fit_transform(self._queries)
            dims = min(128, tf.shape[1] - 1, len(self._queries) - 1)
            self._svd = TruncatedSVD(dims, random_state=0).fit(tf) if dims >= 2 else None
        x = self._embed(self._queries)
        model = KNNPredictor() if predictor == "knn" else LogisticPredictor()
        self._quality = model.fit(x, data.correct[:, cols])
        from sklearn.neighbors import KNeighborsRegressor

        k = min(n_neighbors, len(self._queries))
        self._cost = KNeighborsRegressor(n_neighbors=k, metric="cosine", algorithm="brute")
        self._cost.fit(x, data.cost[:, cols])

    def _embed(self, queries: list[str]) -> np.ndarray:
        if self.encoder == "tfidf":
            tf = self._tfidf.transform(queries)
            return unit_rows(self._svd.transform(tf) if self._svd is not None else tf.toarray())
        return embed_queries(queries, encoder=self.encoder)

    def score(self, queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if not queries:
            raise LabcoreError("no queries to score")
        x = self._embed([str(q) for q in queries])
        quality = np.clip(self._quality.predict(x), 0.0, 1.0)
        cost = np.maximum(np.asarray(self._cost.predict(x), dtype=np.float64), 0.0)
        return quality, cost.reshape(len(queries), len(self.models))
