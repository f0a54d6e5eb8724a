"""The network of ``examples/custom_network.py`` passes the checks the built-in networks pass."""

from __future__ import annotations

import itertools
import re
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Subset

import adanet
from adanet.data import digits_datasets
from adanet.training.losses import MultiExitLoss
from conftest import load_example
from decision_margin import assert_same_decisions, chosen_logits

# Compares computations that may round differently; run again on another kernel path.
pytestmark = pytest.mark.numerics

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "custom_network.py"
HOW_TO = REPO / "docs" / "how-to" / "custom-network.md"


example = load_example("custom_network")


@pytest.fixture(autouse=True)
def _one_thread(single_thread: None) -> None:
    """Every test here on one thread: small convolutions only contend for the cores."""


def _model() -> adanet.EarlyExitNetwork:
    model: adanet.EarlyExitNetwork = example.TinyMultiScaleNet(num_classes=10, in_channels=3)
    return model


def test_forward_and_backward_reach_every_parameter() -> None:
    model = _model()
    outputs = model(torch.randn(4, 3, 32, 32))
    assert model.num_exits == len(outputs) == 4
    assert all(o.shape == (4, 10) for o in outputs)
    sum(o.sum() for o in outputs).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_features_and_heads_agree_with_forward() -> None:
    model = _model().eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
        direct = model(x)
    assert [f.shape[-1] for f in features] == [4, 4, 8, 4]  # coarse, coarse, fine, fine
    for a, b in zip(logits, direct, strict=True):
        torch.testing.assert_close(a, b)


def test_costs_are_monotone_and_count_every_parameter() -> None:
    model = _model()
    for convention in ("actual", "reference"):
        costs = adanet.measure_exit_costs(model, 32, convention)
        assert [c.exit for c in costs] == [0, 1, 2, 3]
        macs = [c.macs for c in costs]
        params = [c.params for c in costs]
        assert all(a < b for a, b in itertools.pairwise(macs)), macs
        assert all(a < b for a, b in itertools.pairwise(params)), params
        assert params[-1] == sum(p.numel() for p in model.parameters())
    assert model.training  # the measurement restores the training flag


def test_bad_input_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        _model()(torch.randn(1, 3, 4, 4))


def test_early_exit_equals_the_simulation_at_every_exit() -> None:
    model = _model().eval()
    x = torch.randn(96, 3, 32, 32)
    with torch.no_grad():
        stacked = torch.stack(model(x))  # [exits, N, classes]
    policy = adanet.calibrate_shares(stacked, [0.25, 0.25, 0.25, 0.25])
    expected = policy.simulate(stacked)
    assert set(expected.tolist()) == {0, 1, 2, 3}  # the policy sends samples to every exit
    result = adanet.early_exit(model, x, policy)
    assert_same_decisions(result.exit_index, policy, stacked)
    chosen = chosen_logits(stacked, result.exit_index)
    torch.testing.assert_close(result.logits, chosen, rtol=0, atol=1e-4)
    costs = torch.tensor(
        [c.macs for c in adanet.measure_exit_costs(model, 32)], dtype=torch.float64
    )
    torch.testing.assert_close(result.cost, costs[result.exit_index])


def test_budgeted_sweep_runs_on_its_logits() -> None:
    model = _model().eval()
    with torch.no_grad():
        val = torch.stack(model(torch.randn(64, 3, 32, 32)))
        test = torch.stack(model(torch.randn(64, 3, 32, 32)))
    val_targets = torch.randint(0, 10, (64,))
    test_targets = torch.randint(0, 10, (64,))
    macs = [float(c.macs) for c in adanet.measure_exit_costs(model, 32)]
    records = adanet.budgeted_sweep(val, val_targets, test, test_targets, macs)
    assert len(records) == 39
    for record in records:
        assert macs[0] <= record.mean_cost <= macs[-1]
        assert 0.0 <= record.accuracy <= 1.0
        assert sum(record.exit_fractions) == pytest.approx(1.0)


@pytest.mark.slow
def test_a_short_training_run_lowers_the_loss() -> None:
    splits = digits_datasets(seed=0)
    train = Subset(splits.train, range(256))
    loader = DataLoader(
        train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    fixed = DataLoader(Subset(splits.train, range(128)), batch_size=128)
    model = _model()
    loss_fn = MultiExitLoss("ce")

    def loss_on_fixed() -> float:
        model.eval()
        with torch.no_grad():
            images, targets = next(iter(fixed))
            return float(loss_fn(model(images), targets))

    before = loss_on_fixed()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    epoch_losses = [example.train_epoch(model, loader, optimizer, loss_fn) for _ in range(2)]
    after = loss_on_fixed()
    assert after < 0.8 * before, (before, epoch_losses, after)
    assert epoch_losses[1] < epoch_losses[0]


def test_the_how_to_quotes_the_example_verbatim() -> None:
    source = EXAMPLE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", HOW_TO.read_text(encoding="utf-8"), re.DOTALL)
    assert any("class TinyMultiScaleNet" in block for block in blocks), "the class is missing"
    for block in blocks:  # main()'s lines are quoted without their indentation
        assert block in source or textwrap.indent(block, "    ") in source, block
