"""``examples/learned_gate.py`` runs, and its gate is a working ExitDecider."""

from __future__ import annotations

import pytest
import torch

import adanet
from conftest import load_example

example = load_example("learned_gate")


def test_gate_runs_through_early_exit_with_its_own_decisions() -> None:
    torch.manual_seed(0)
    model = adanet.RANet(adanet.RANetConfig(num_blocks=2, block_step=1, step=1, num_classes=4))
    model.eval()
    x = torch.randn(32, 3, 32, 32)
    with torch.no_grad():
        logits = torch.stack(model(x))
    # Gates that send about half of the samples out early, fitted on these logits.
    gate = example.LearnedGate.fit(logits, min_agreement=0.5, steps=50)
    assert isinstance(gate, adanet.ExitDecider)
    result = adanet.early_exit(model, x, gate, costs=list(range(1, model.num_exits + 1)))
    assert torch.equal(result.exit_index, gate.simulate(logits))
    records = adanet.budgeted_sweep(
        logits,
        torch.zeros(32, dtype=torch.long),
        logits.flip(1),
        torch.zeros(32, dtype=torch.long),
        list(range(1, model.num_exits + 1)),
        ps=[1.0],
        calibrator=lambda p, v, t: gate,
    )
    assert torch.equal(
        torch.tensor(records[0].exit_fractions),
        torch.bincount(gate.simulate(logits.flip(1)), minlength=model.num_exits) / 32,
    )


@pytest.mark.slow
def test_example_main_runs() -> None:
    torch.set_num_threads(1)
    out = example.main(epochs=1)
    assert 0.0 < out["gate_cost"] <= 1.0 and 0.0 <= out["gate_accuracy"] <= 1.0
    assert out["threshold_cost"] <= max(out["gate_cost"], 1.0)
