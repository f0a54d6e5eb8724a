"""A learned exit policy: a small gate on each exit's logits, trained on held-out logits.

Thresholds on the softmax confidence are one rule among many. ``LearnedGate`` instead fits,
for every exit but the last, a logistic regression on a few features of that exit's logits
(the sorted top probabilities and the normalised entropy) that predicts whether the exit
already gives the same answer as the last exit. A sample leaves when the gate's probability
reaches ``min_agreement``. The gate is a plain Python class: it follows the
:class:`adanet.ExitDecider` protocol (``num_exits``, ``initial_state``, ``step``, ``simulate``)
without subclassing anything, so :func:`adanet.early_exit`, :func:`adanet.evaluate_policy`
and :func:`adanet.budgeted_sweep` run it unchanged.

Run it with ``python examples/learned_gate.py`` (about half a minute on a CPU): it trains a
small RANet on scikit-learn's digits, fits the gate on the validation split and compares it,
run for real on the test split, with the threshold policy of the same mean cost.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

import adanet
from adanet.data import build_loaders, digits_datasets
from adanet.training.losses import MultiExitLoss

TOP_K = 3


def gate_features(logits: Tensor) -> Tensor:
    """``[..., classes]`` logits to ``[..., TOP_K + 1]`` features: top probabilities, entropy."""
    probs = torch.softmax(logits.float(), dim=-1)
    top = probs.topk(min(TOP_K, probs.shape[-1]), dim=-1).values
    if top.shape[-1] < TOP_K:
        top = torch.nn.functional.pad(top, (0, TOP_K - top.shape[-1]))
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=-1, keepdim=True)
    return torch.cat([top, entropy / math.log(max(probs.shape[-1], 2))], dim=-1)


class LearnedGate:
    """Per-exit logistic gates on logit features; leave when P(agree with last) is high.

    Args:
        weights: ``[exits - 1, TOP_K + 1]`` gate weights.
        biases: ``[exits - 1]`` gate biases.
        min_agreement: Leave at the first exit whose gate output reaches this.
    """

    def __init__(self, weights: Tensor, biases: Tensor, min_agreement: float) -> None:
        self.weights, self.biases = weights.detach(), biases.detach()
        self.min_agreement = min_agreement
        self.num_exits = weights.shape[0] + 1

    @classmethod
    def fit(cls, val_logits: Tensor, min_agreement: float = 0.9, steps: int = 300) -> LearnedGate:
        """Trains the gates on held-out ``[exits, N, classes]`` logits (no labels needed)."""
        features = gate_features(val_logits[:-1])  # [exits - 1, N, F]
        agree = (val_logits[:-1].argmax(-1) == val_logits[-1].argmax(-1)).float()
        weights = torch.zeros(features.shape[0], features.shape[2], requires_grad=True)
        biases = torch.zeros(features.shape[0], requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [weights, biases], max_iter=steps, line_search_fn="strong_wolfe"
        )

        def loss_fn() -> Tensor:
            optimizer.zero_grad()
            scores = (features * weights.unsqueeze(1)).sum(-1) + biases.unsqueeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(scores, agree)
            loss.backward()
            return loss

        optimizer.step(loss_fn)  # type: ignore[no-untyped-call]
        return cls(weights, biases, min_agreement)

    def _agreement(self, exit_index: int, logits: Tensor) -> Tensor:
        w = self.weights[exit_index].to(logits.device)
        b = self.biases[exit_index].to(logits.device)
        return torch.sigmoid(gate_features(logits) @ w + b)

    def initial_state(self, batch_size: int, device: Any = None) -> dict[str, Tensor]:
        return {}

    def step(
        self, exit_index: int, logits: Tensor, state: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if exit_index == self.num_exits - 1:
            return torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device), state
        return self._agreement(exit_index, logits) >= self.min_agreement, state

    def simulate(self, logits: Tensor) -> Tensor:
        exits = torch.full((logits.shape[1],), self.num_exits - 1, dtype=torch.long)
        for k in range(self.num_exits - 2, -1, -1):
            exits = torch.where(self._agreement(k, logits[k]).cpu() >= self.min_agreement, k, exits)
        return exits


def train(model: adanet.RANet, loader: Any, epochs: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    criterion = MultiExitLoss("ce")
    model.train()
    for _ in range(epochs):
        for images, targets in loader:
            optimizer.zero_grad()
            criterion(model(images), targets).backward()
            optimizer.step()
    model.eval()


def main(epochs: int = 3, min_agreement: float = 0.9) -> dict[str, float]:
    """Train a small RANet on digits, fit the gate, and compare it with thresholds.

    Returns:
        Test accuracy and cost (share of the last exit's) of the gate and of the threshold
        policy calibrated for the gate's mean cost.
    """
    start = time.perf_counter()
    torch.manual_seed(0)
    splits = digits_datasets(seed=0)
    loaders = build_loaders(splits, batch_size=64, workers=0, pin_memory=False)
    assert loaders.val is not None  # digits_datasets holds out a validation split by default
    config = adanet.RANetConfig(num_blocks=2, block_step=1, step=1, num_classes=splits.num_classes)
    model = adanet.RANet(config)
    train(model, loaders.train, epochs)
    macs = [c.macs for c in adanet.measure_exit_costs(model, splits.image_size)]
    val = adanet.evaluate_anytime(model, loaders.val, costs=macs)

    gate = LearnedGate.fit(val.logits, min_agreement=min_agreement)
    gated = adanet.evaluate_policy(model, loaders.test, gate, costs=macs, baselines=False)
    budget = max(gated.mean_cost, macs[0])
    thresholds = adanet.calibration.calibrate_for_cost(val.logits, macs, budget)
    plain = adanet.evaluate_policy(model, loaders.test, thresholds, costs=macs, baselines=False)
    out = {
        "gate_accuracy": gated.accuracy,
        "gate_cost": gated.mean_cost / macs[-1],
        "threshold_accuracy": plain.accuracy,
        "threshold_cost": plain.mean_cost / macs[-1],
    }
    print(
        f"learned gate : accuracy {out['gate_accuracy']:.1%} at {out['gate_cost']:.0%} of the cost"
    )
    print(f"thresholds   : accuracy {out['threshold_accuracy']:.1%} at {out['threshold_cost']:.0%}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)  # tensors this small run faster on one thread than on several
    main()
