"""Label issues: confident learning on the scoring pass's predicted probabilities (Northcutt et al. 2021)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from datadiet.detection import DEFAULT_DETECTOR, DETECTORS, LabelIssues, find_label_issues
from datadiet.scores.base import EvalPassScore, SyncMin, merge_seen, single_process
from datadiet.scores.registry import register_score


@register_score("label_issue")
class LabelIssue(EvalPassScore):
    """How likely an example's given label is wrong, and whether it is flagged as mislabelled.

    The scoring pass keeps every example's predicted class probabilities (``4 K`` bytes per example); when
    the probe ends a registered detector (``detector``, default ``below_chance``, see :mod:`datadiet.detection`)
    flags the likely label errors from them. The score is ``max_{j≠y} p_j − p_y`` in [−1, 1] (larger = more likely
    wrong; raw and oriented are the same); the table also gets the columns ``mislabelled`` (the flag),
    ``predicted_label`` (the most probable class) and ``predicted_probability`` (its probability), and
    ``metadata["label_noise_estimate"]`` (the share flagged) and ``metadata["confident_learning_noise_estimate"]``
    (the share confident learning's ``both`` flags on the same probabilities: the regime guard of
    ``mislabelled="auto"`` compares the two).

    The probabilities should be close to out-of-sample: those of a model early in training, before it
    memorises wrong labels (the in-run probe's pass after 3 epochs on MNIST-1D), or of a separate probe
    trained briefly.
    """

    bytes_per_example = 44  # 4 (the score) + 4 K (the probabilities), for K = 10 classes

    def __init__(self, num_examples: int, detector: str = DEFAULT_DETECTOR) -> None:
        super().__init__(num_examples)
        DETECTORS.get(detector)  # an unknown detector fails now, naming the registered ones
        self.detector = detector
        # allocated at the first batch, when the number of classes is known
        self.add_state("probabilities", torch.full((num_examples, 0), float("nan")))
        self.issues: Optional[LabelIssues] = None
        self.confident_learning_estimate: Optional[float] = None

    def check_batch(self, logits: Any, target: Any, adapter: Any) -> None:
        super().check_batch(logits, target, adapter)
        if logits.ndim != 2:  # a token's wrong label is not an example's: nothing to flag or exclude
            raise ValueError(
                f"score 'label_issue' flags examples that have one class label each (logits (batch, classes)), got "
                f"model outputs of shape {tuple(logits.shape)}: a sequence model's labels are per token"
            )

    def update(self, original_index: Tensor, logits: Tensor, target: Optional[Tensor]) -> None:
        if target is None:
            raise ValueError("score 'label_issue' needs the batch's class labels")
        probabilities = torch.softmax(logits.detach().float(), dim=1)
        if self.probabilities.shape[1] != probabilities.shape[1]:
            if self.probabilities.shape[1]:
                raise ValueError(
                    f"score 'label_issue': batches have {probabilities.shape[1]} classes, earlier ones "
                    f"{self.probabilities.shape[1]}"
                )
            self.probabilities = torch.full(
                (self.num_examples, probabilities.shape[1]), float("nan"), device=self.probabilities.device
            )
        self.probabilities.index_copy_(0, original_index, probabilities.to(self.probabilities.device))

    def end_scoring(self, sync_min: SyncMin = single_process) -> None:
        self.probabilities = merge_seen(self.probabilities, sync_min)

    def finalize(self, context: Any) -> None:
        labels = context.labels
        if labels is None:
            raise ValueError("score 'label_issue' needs the training set's integer class labels")
        if self.probabilities.shape[1] == 0:  # nothing was scored
            self.issues = None
            return
        # the same merged probabilities on every rank give the same flags: no broadcast needed
        probabilities = self.probabilities.double().cpu().numpy()
        self.issues = find_label_issues(np.asarray(labels), probabilities, self.detector)
        self.confident_learning_estimate = (
            self.issues.noise_rate_estimate
            if self.detector == "both"
            else find_label_issues(np.asarray(labels), probabilities, "both").noise_rate_estimate
        )
        self.value = torch.from_numpy(self.issues.score).to(self.value.device, self.value.dtype)

    def columns(self) -> dict[str, np.ndarray]:
        if self.issues is None:
            return {}
        predicted = self.issues.predicted_label
        # the predicted class's probability: how sure a relabelling to it would be (mislabelled='relabel'); one
        # gathered value per scored example, not a copy of the N x K probabilities
        confidence = np.full(len(predicted), np.nan, dtype=np.float32)
        rows = np.flatnonzero(predicted >= 0)
        device = self.probabilities.device
        gathered = self.probabilities[torch.from_numpy(rows).to(device), torch.from_numpy(predicted[rows]).to(device)]
        confidence[rows] = gathered.float().cpu().numpy()
        return {
            "mislabelled": self.issues.flagged.copy(),
            "predicted_label": predicted.copy(),
            "predicted_probability": confidence,
        }

    def metadata(self) -> dict[str, Any]:
        if self.issues is None:
            return {}
        return {
            "label_noise_estimate": self.issues.noise_rate_estimate,
            "confident_learning_noise_estimate": self.confident_learning_estimate,
            "label_issue_detector": self.detector,
            "label_issues_flagged": self.issues.num_flagged,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("probabilities")
        if saved is not None and saved.shape[1] != self.probabilities.shape[1]:
            self.probabilities = torch.full(tuple(saved.shape), float("nan"), device=self.probabilities.device)
        super().load_state_dict(state)
