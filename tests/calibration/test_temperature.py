"""Tests for adanet.calibration.temperature: temperatures lower held-out NLL; ECE by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import adanet
from adanet.calibration.temperature import expected_calibration_error, fit_temperatures


def miscalibrated(num_samples: int, seed: int) -> tuple[Tensor, Tensor]:
    """Three exits: overconfident (logits x4), about right, underconfident (logits x0.3)."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 10, (num_samples,), generator=gen)
    onehot = torch.nn.functional.one_hot(targets, 10).float()
    # With unit Gaussian noise around 2 * onehot, softmax(2 * z) is the true posterior, so these
    # base logits are calibrated at temperature 1.
    base = 2.0 * (torch.randn(3, num_samples, 10, generator=gen) + 2.0 * onehot)
    scale = torch.tensor([4.0, 1.0, 0.3]).view(3, 1, 1)
    return base * scale, targets


def nll(logits: Tensor, targets: Tensor) -> list[float]:
    return [
        float(torch.nn.functional.cross_entropy(logits[k].double(), targets))
        for k in range(logits.shape[0])
    ]


def test_fitted_temperatures_lower_held_out_nll() -> None:
    val_logits, val_targets = miscalibrated(3000, seed=0)
    test_logits, test_targets = miscalibrated(3000, seed=1)
    temps = adanet.calibration.fit_temperatures(val_logits, val_targets)
    assert len(temps) == 3 and all(isinstance(t, float) for t in temps)
    # The generating scale is undone: about 4, 1 and 0.3.
    assert temps[0] == pytest.approx(4.0, rel=0.15)
    assert temps[1] == pytest.approx(1.0, rel=0.15)
    assert temps[2] == pytest.approx(0.3, rel=0.15)
    before = nll(test_logits, test_targets)
    after = nll(test_logits / torch.tensor(temps).view(3, 1, 1), test_targets)
    for k in (0, 2):
        assert after[k] < before[k] - 0.05, k
    assert after[1] <= before[1] + 1e-3
    ece_before = expected_calibration_error(test_logits, test_targets)
    ece_after = expected_calibration_error(test_logits, test_targets, temperatures=temps)
    assert ece_after[0] < ece_before[0] and ece_after[2] < ece_before[2]


def test_fit_is_a_minimum_of_the_nll() -> None:
    val_logits, val_targets = miscalibrated(500, seed=2)
    temps = fit_temperatures(val_logits, val_targets)
    for k, t in enumerate(temps):
        at = nll(val_logits[k : k + 1] / t, val_targets)[0]
        for factor in (0.9, 1.1):
            assert at <= nll(val_logits[k : k + 1] / (t * factor), val_targets)[0] + 1e-9


def test_non_finite_rows_are_left_out_and_errors() -> None:
    logits, targets = miscalibrated(400, seed=3)
    dirty = logits.clone()
    dirty[1, 5] = math.nan
    dirty[0, 6, 2] = math.inf
    clean_fit = fit_temperatures(logits[:, 7:], targets[7:])
    dirty_fit = fit_temperatures(dirty[:, 5:], targets[5:])
    assert dirty_fit == pytest.approx(clean_fit, rel=1e-6)
    with pytest.raises(ValueError, match="finite"):
        fit_temperatures(torch.full((2, 3, 4), math.nan), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError):
        fit_temperatures(logits, targets.float())
    with pytest.raises(ValueError):
        expected_calibration_error(logits, targets, num_bins=0)


def test_ece_by_hand() -> None:
    # Two samples, one exit, two bins: confidences 0.9 (right) and 0.6 (wrong).
    probs = torch.tensor([[[0.9, 0.1], [0.6, 0.4]]])
    targets = torch.tensor([0, 1])
    ece = expected_calibration_error(probs.log(), targets, num_bins=2)
    # Both in the upper bin: |mean(correct) - mean(conf)| = |0.5 - 0.75| = 0.25.
    assert ece == pytest.approx([0.25])
    ece = expected_calibration_error(probs.log(), targets, num_bins=10)
    # Separate bins: (|1 - 0.9| + |0 - 0.6|) / 2 = 0.35.
    assert ece == pytest.approx([0.35])


def test_no_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="val_logits holds 0 samples"):
        fit_temperatures(torch.zeros(2, 0, 4), torch.zeros(0, dtype=torch.long))


def test_one_sample_warns_that_the_temperatures_are_undetermined() -> None:
    logits = torch.tensor([[[4.0, 0.0, 0.0]], [[0.0, 3.0, 0.0]]])  # exit 0 right, exit 1 wrong
    with pytest.warns(UserWarning, match=r"exits \[0, 1\] reached the end of the search range"):
        temperatures = fit_temperatures(logits, torch.tensor([0]))
    assert temperatures[0] == pytest.approx(1e-3) and temperatures[1] == pytest.approx(1e3)


def test_constant_logits_give_one_with_a_warning() -> None:
    logits = torch.zeros(2, 8, 4)
    targets = torch.arange(8) % 4
    noise = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    logits[1] = noise + 2.0 * torch.nn.functional.one_hot(targets, 4)  # informative, not separable
    with pytest.warns(UserWarning, match=r"exits \[0\] have equal logits"):
        temperatures = fit_temperatures(logits, targets)
    assert temperatures[0] == 1.0 and temperatures[1] != 1.0
