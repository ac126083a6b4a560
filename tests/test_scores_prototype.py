"""prototype_distance: label-free, tested on clusters with outliers (the outliers must score hardest)."""

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from datadiet import DifficultyCallback, PruningDataModule
from datadiet.scores import ScoreContext, get_score
from datadiet.scores.prototype import prototype_distance, spherical_kmeans


@pytest.fixture
def clusters_with_outliers():
    """4 tight direction clusters in 16-D (60 points each) plus 6 points in unrelated directions."""
    rng = np.random.default_rng(0)
    centers = np.eye(16)[:4] * 5
    points = np.concatenate([c + 0.2 * rng.normal(size=(60, 16)) for c in centers])
    outliers = np.zeros((6, 16))
    outliers[np.arange(6), 6 + np.arange(6)] = 5.0
    outliers[:, :4] = 1.0  # equally close to every cluster, far from all
    embeddings = np.concatenate([points, outliers]).astype(np.float32)
    labels = np.repeat(np.arange(5), [60, 60, 60, 60, 6])
    return embeddings, labels, np.arange(240, 246)


def test_outliers_score_hardest(clusters_with_outliers):
    embeddings, _, outliers = clusters_with_outliers
    distance = prototype_distance(embeddings, num_clusters=4, seed=0)
    assert set(np.argsort(distance)[-6:]) == set(outliers)
    assert distance[:240].max() < distance[outliers].min()


def test_distance_is_one_minus_cosine_to_the_nearest_centroid():
    # two exact direction clusters: the centroids are the directions, so the distances are known
    embeddings = np.array([[1, 0], [2, 0], [0, 3], [0, 1], [1, 1]], dtype=np.float32)
    distance = prototype_distance(embeddings[:4], num_clusters=2, seed=0)
    np.testing.assert_allclose(distance, 0.0, atol=1e-6)
    # with a diagonal point: 1 − max cosine to the k-means centroids, computed with numpy
    centroids = spherical_kmeans(embeddings, 2, seed=0)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    expected = 1 - (unit @ centroids.T).max(axis=1)
    np.testing.assert_allclose(prototype_distance(embeddings, num_clusters=2, seed=0), expected, atol=1e-6)


def test_supervised_variant_matches_numpy(clusters_with_outliers):
    embeddings, labels, _ = clusters_with_outliers
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    centroids = np.stack([unit[labels == c].mean(axis=0) for c in range(5)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    expected = 1 - np.einsum("nd,nd->n", unit, centroids[labels])
    got = prototype_distance(embeddings, labels=labels, supervised=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        prototype_distance(embeddings, supervised=True)


def test_nan_rows_stay_nan(clusters_with_outliers):
    embeddings, _, _ = clusters_with_outliers
    embeddings = embeddings.copy()
    embeddings[3] = np.nan
    distance = prototype_distance(embeddings, num_clusters=4)
    assert np.isnan(distance[3]) and np.isfinite(np.delete(distance, 3)).all()


def test_score_from_precomputed_file(tmp_path, clusters_with_outliers):
    embeddings, _, outliers = clusters_with_outliers
    order = np.random.default_rng(1).permutation(len(embeddings))
    np.savez(tmp_path / "emb.npz", embeddings=embeddings[order], index=order)
    score = get_score("prototype_distance")(len(embeddings), embeddings=tmp_path / "emb.npz", num_clusters=4)
    assert score.needs == frozenset()
    score.finalize(ScoreContext())
    oriented, raw = score.compute()
    assert set(np.argsort(oriented)[-6:]) == set(outliers)
    np.testing.assert_array_equal(oriented, raw)


class Encoder(pl.LightningModule):
    """Penultimate features = the input itself (identity body), so the callback sees the known structure."""

    def __init__(self, dim):
        super().__init__()
        self.body = nn.Identity()
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self(batch[0]), batch[1]) * 0.0

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("source", ["features", "embed_fn"])
def test_through_the_callback_unlabelled_structure(clusters_with_outliers, source):
    embeddings, labels, outliers = clusters_with_outliers
    options = {"num_clusters": 4}
    if source == "embed_fn":
        options["embed_fn"] = lambda x: x * 3.0  # a user encoder
    callback = DifficultyCallback(scores=["prototype_distance"], score_options={"prototype_distance": options})
    dm = PruningDataModule(TensorDataset(torch.tensor(embeddings), torch.tensor(labels)), batch_size=64)
    pl.Trainer(
        max_epochs=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(Encoder(16), datamodule=dm)
    table = callback.score_table
    assert set(np.argsort(table["prototype_distance"])[-6:]) == set(outliers)
