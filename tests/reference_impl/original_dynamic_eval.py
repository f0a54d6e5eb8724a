"""Plain-loop transcription of the original budgeted-batch evaluation (RANet / MSDNet
``adaptive_inference.py``: ``Tester.dynamic_eval_find_threshold`` and
``dynamic_eval_with_threshold``), written independently and used only as a test oracle."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def reference_fractions(p: float, num_exits: int) -> Tensor:
    """The reference's float32 shares: probs = exp(log(p) * [1..n]); probs /= probs.sum()."""
    p_t = torch.tensor([p], dtype=torch.float32)
    probs = torch.exp(torch.log(p_t) * torch.arange(1, num_exits + 1, dtype=torch.float32))
    probs /= probs.sum()
    return probs


def find_threshold(probs: Tensor, fractions: Tensor | list[float]) -> list[float]:
    """Transcription of Tester.dynamic_eval_find_threshold (threshold part), plain loops."""
    n_stage, n_sample, _ = probs.shape
    max_t, _ = probs.max(dim=2)
    _, sorted_t = max_t.sort(dim=1, descending=True)
    max_preds = max_t.tolist()
    sorted_idx = sorted_t.tolist()
    filtered = [0] * n_sample
    thresholds = [1e8] * n_stage
    for k in range(n_stage - 1):
        count = 0
        # As in the reference: with a float32 tensor of shares this multiplies in float32.
        out_n = math.floor(n_sample * fractions[k])
        for i in range(n_sample):
            ori_idx = sorted_idx[k][i]
            if filtered[ori_idx] == 0:
                count += 1
                if count == out_n:
                    thresholds[k] = max_preds[k][ori_idx]
                    break
        for i in range(n_sample):
            if max_preds[k][i] >= thresholds[k]:
                filtered[i] += 1
    thresholds[n_stage - 1] = -1e8
    return thresholds


def with_threshold(
    probs: Tensor, targets: Tensor, flops: list[float], thresholds: list[float]
) -> tuple[float, float, list[int]]:
    """Transcription of Tester.dynamic_eval_with_threshold: (accuracy %, expected flops, counts)."""
    n_stage, n_sample, _ = probs.shape
    max_t, arg_t = probs.max(dim=2)
    max_preds = max_t.tolist()
    argmax_preds = arg_t.tolist()
    gold = targets.tolist()
    exp = [0] * n_stage
    acc = 0
    for i in range(n_sample):
        for k in range(n_stage):
            if max_preds[k][i] >= thresholds[k]:
                if int(gold[i]) == int(argmax_preds[k][i]):
                    acc += 1
                exp[k] += 1
                break
    expected_flops = 0.0
    for k in range(n_stage):
        expected_flops += exp[k] / n_sample * flops[k]
    return acc * 100.0 / n_sample, expected_flops, exp
