"""Self-supervised prototypes (Sorscher et al. 2022): distance of an embedding to its nearest k-means centroid.

Label-free by default: embeddings are L2-normalised, clustered with faiss spherical k-means, and an
example's score is ``1 − cos(e, nearest centroid)`` — far from every prototype = atypical = hard.
With ``supervised=True`` the centroid is instead the (normalised) mean embedding of the example's own
class, which needs labels.

Where embeddings come from (``score_options={"prototype_distance": {...}}``):

* default — the input of the probe model's final ``nn.Linear`` (its penultimate features), captured
  in the eval-mode scoring pass (the callback's ``feature_module`` picks another layer);
* ``embed_fn`` — any encoder, called as ``embed_fn(inputs)`` on each scoring batch's model input
  (e.g. a pretrained self-supervised network);
* ``embeddings`` — a precomputed ``(N, D)`` array, or a path to ``.npy`` / ``.npz`` (key
  ``embeddings``, optional ``index`` giving each row's original index); no model output is used.

Under DDP each process writes the embeddings of the examples it scored into an ``(N, D)`` buffer
(NaN elsewhere) and the buffers are merged with ``merge_seen`` (elementwise MIN over the processes
that saw an example — copies of one example are identical, as every process holds the same weights).
Rank 0 then runs k-means and broadcasts the distances, so every process gets the same scores.
Memory: ``4·D`` bytes per example on the model's device.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from datadiet.scores.base import EvalPassScore, SyncMin, merge_seen, single_process
from datadiet.scores.context import ScoreContext
from datadiet.scores.registry import register_score


def _normalize(embeddings: np.ndarray) -> np.ndarray:
    """A float32 copy with unit rows (faiss's in-place C loop: ~10x numpy's on 1M x 128)."""
    import faiss

    embeddings = np.array(embeddings, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(embeddings)
    return embeddings


def spherical_kmeans(
    embeddings: np.ndarray, num_clusters: int, niter: int = 20, seed: int = 0, *, normalized: bool = False
) -> np.ndarray:
    """Unit-norm centroids of faiss spherical k-means over L2-normalised ``embeddings``; ``(k, D)`` float32.

    faiss trains on at most 256 points per centroid (its default subsampling), then every example is
    assigned to a centroid; ``normalized=True`` skips the normalising copy for rows already of unit norm.
    """
    import faiss

    data = embeddings if normalized else _normalize(embeddings)
    if not 1 <= num_clusters <= len(data):
        raise ValueError(f"`num_clusters` must be in [1, {len(data)}] (the number of embeddings), got {num_clusters}")
    kmeans = faiss.Kmeans(
        data.shape[1], int(num_clusters), niter=int(niter), seed=int(seed), spherical=True, verbose=False
    )
    kmeans.train(data)
    return _normalize(kmeans.centroids)


def prototype_distance(
    embeddings: np.ndarray,
    num_clusters: int = 10,
    *,
    labels: Optional[np.ndarray] = None,
    supervised: bool = False,
    niter: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """``1 − cos(e, nearest centroid)`` per row of ``embeddings`` (rows with NaN get NaN).

    Args:
        embeddings: ``(N, D)`` array.
        num_clusters: k of the k-means (unsupervised only).
        labels: per-row class labels (``supervised=True`` only).
        supervised: use the normalised mean embedding of each row's own class as its centroid.
        niter: k-means iterations.
        seed: k-means seed.

    Returns:
        float64 distances in ``[0, 2]``, larger = less typical = harder.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2:
        raise ValueError(f"`embeddings` must have shape (N, D), got {embeddings.shape}")
    valid = ~np.isnan(embeddings.sum(axis=1))  # a NaN anywhere in a row (unseen example)
    distance = np.full(len(embeddings), np.nan)
    if not valid.any():
        return distance
    data = _normalize(embeddings[valid])
    if supervised:
        if labels is None:
            raise ValueError("`supervised=True` needs per-example labels, got None")
        labels = np.asarray(labels)[valid]
        classes, members = np.unique(labels, return_inverse=True)
        sums = np.zeros((len(classes), data.shape[1]), dtype=np.float64)
        np.add.at(sums, members, data)
        centroids = _normalize(sums)
        similarity = np.einsum("nd,nd->n", data, centroids[members])
    else:
        centroids = spherical_kmeans(data, num_clusters, niter=niter, seed=seed, normalized=True)
        similarity = np.concatenate(
            [(data[start : start + 65536] @ centroids.T).max(axis=1) for start in range(0, len(data), 65536)]
        )
    distance[valid] = 1.0 - np.clip(similarity.astype(np.float64), -1.0, 1.0)
    return distance


def load_embeddings(source: Union[str, os.PathLike, np.ndarray, Tensor], num_examples: int) -> np.ndarray:
    """An ``(N, D)`` array from an array or a ``.npy`` / ``.npz`` file (``embeddings`` [+ ``index``])."""
    index = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no embeddings file at {path}")
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "embeddings" not in data.files:
                    raise ValueError(f"{path} has no `embeddings` array; it has {data.files}")
                array = data["embeddings"]
                index = data["index"] if "index" in data.files else None
        else:
            array = np.load(path, allow_pickle=False)
    else:
        array = source.detach().cpu().numpy() if isinstance(source, Tensor) else np.asarray(source)
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {array.shape}")
    if index is None:
        if len(array) != num_examples:
            raise ValueError(f"{len(array)} embeddings for {num_examples} training examples (give an `index` array)")
        return array
    full = np.full((num_examples, array.shape[1]), np.nan, dtype=np.float32)
    full[np.asarray(index, dtype=np.int64)] = array
    return full


@register_score("prototype_distance")
class PrototypeDistance(EvalPassScore):
    """Cosine distance to the nearest k-means prototype of the embeddings (see the module docstring).

    Larger = harder; raw and oriented are the same.

    Args:
        num_examples: training set size.
        num_clusters: k; default the data module's number of classes (10 when unknown).
        supervised: distance to the own class's centroid instead (needs labels).
        embed_fn: encoder ``inputs → (B, D)`` used instead of the probe's penultimate features.
        embeddings: precomputed embeddings (array or ``.npy`` / ``.npz`` path) used instead of any model.
        niter: k-means iterations.
        seed: k-means seed.
    """

    requires_labels = False
    needs_class_probabilities = False
    needs = frozenset({"features"})

    def __init__(
        self,
        num_examples: int,
        num_clusters: Optional[int] = None,
        supervised: bool = False,
        embed_fn: Optional[Callable[[Any], Tensor]] = None,
        embeddings: Union[None, str, os.PathLike, np.ndarray, Tensor] = None,
        niter: int = 20,
        seed: int = 0,
    ) -> None:
        super().__init__(num_examples)
        if num_clusters is not None and (
            isinstance(num_clusters, bool) or not isinstance(num_clusters, int) or num_clusters < 1
        ):
            raise ValueError(f"`num_clusters` must be a positive integer or None, got {num_clusters!r}")
        if embed_fn is not None and embeddings is not None:
            raise ValueError("give either `embed_fn` or `embeddings`, not both")
        self.num_clusters = num_clusters
        self.supervised = bool(supervised)
        self.embed_fn = embed_fn
        self.precomputed = None if embeddings is None else load_embeddings(embeddings, num_examples)
        self.niter = int(niter)
        self.seed = int(seed)
        self.needs = (
            frozenset() if embeddings is not None else frozenset({"inputs"}) if embed_fn else frozenset({"features"})
        )

    def update(
        self,
        original_index: Tensor,
        logits: Tensor,
        target: Optional[Tensor],
        *,
        features: Optional[Tensor] = None,
        inputs: Any = None,
        **unused: Any,
    ) -> None:
        if self.precomputed is not None:
            return
        if self.embed_fn is not None:
            embedding = self.embed_fn(inputs)
        elif features is not None:
            embedding = features
        else:
            raise ValueError("prototype_distance needs embeddings: `update(..., features=h)`")
        embedding = embedding.detach().float().flatten(1)
        if "embeddings" not in self._state_names:
            self.add_state(
                "embeddings",
                torch.full((self.num_examples, embedding.shape[1]), float("nan"), device=self.value.device),
            )
        self.embeddings[original_index] = embedding.to(self.embeddings.device)

    def end_scoring(self, sync_min: SyncMin = single_process) -> None:
        if "embeddings" in self._state_names:
            self.embeddings = merge_seen(self.embeddings, sync_min)

    def finalize(self, context: ScoreContext) -> None:
        distance = None
        if context.is_global_zero:
            if self.precomputed is not None:
                embeddings = self.precomputed
            elif "embeddings" in self._state_names:
                embeddings = self.embeddings.cpu().numpy()
            else:
                embeddings = np.full((self.num_examples, 1), np.nan, dtype=np.float32)
            num_clusters = self.num_clusters or context.num_classes
            if num_clusters is None and context.labels is not None:
                num_clusters = len(np.unique(context.labels))
            num_clusters = min(num_clusters or 10, int((~np.isnan(embeddings).any(axis=1)).sum()) or 1)
            distance = prototype_distance(
                embeddings,
                num_clusters,
                labels=context.labels if self.supervised else None,
                supervised=self.supervised,
                niter=self.niter,
                seed=self.seed,
            )
        distance = context.broadcast(distance, 0)
        self.value = torch.as_tensor(distance, dtype=torch.float32, device=self.value.device)
