"""The per-model cost cache follows every change that alters cost."""

from __future__ import annotations

import torch
from torch import nn

from adanet import EarlyExitPolicy, RANet, RANetConfig, early_exit, evaluate_policy
from adanet.costs import exit_costs_for, forget_exit_costs, measure_exit_costs


def _ranet() -> RANet:
    torch.manual_seed(0)
    return RANet(RANetConfig(num_blocks=1, block_step=1, step=1)).eval()


def _images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


LAST_EXIT = EarlyExitPolicy([2.0, 2.0, 0.0])  # max_prob never reaches 2: all go to the end


def _measured_last(model: RANet) -> float:
    return measure_exit_costs(model, 32)[-1].macs


def test_reset_classifier_is_seen_by_early_exit() -> None:
    model = _ranet()
    before = early_exit(model, _images(), LAST_EXIT).mean_cost
    model.reset_classifier(1000)
    after = early_exit(model, _images(), LAST_EXIT).mean_cost
    assert after == _measured_last(model) != before


def test_a_head_swapped_by_hand_is_seen() -> None:
    model = _ranet()
    early_exit(model, _images(), LAST_EXIT)
    head = model.exits[2]
    linear = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    wider = nn.Sequential(nn.Linear(linear.in_features, 512), nn.ReLU(), nn.Linear(512, 10))
    parent = next(m for m in head.modules() if linear in m.children())
    name = next(n for n, c in parent.named_children() if c is linear)
    setattr(parent, name, wider)
    assert early_exit(model, _images(), LAST_EXIT).mean_cost == _measured_last(model)


def test_evaluate_policy_follows_the_change_too() -> None:
    model = _ranet()
    batches = [(_images(), torch.zeros(4, dtype=torch.long))]
    evaluate_policy(model, batches, LAST_EXIT, baselines=False)
    model.reset_classifier(100)
    result = evaluate_policy(model, batches, LAST_EXIT, baselines=False)
    assert result.mean_cost == _measured_last(model)


def test_unrelated_modules_keep_the_cached_costs() -> None:
    model = _ranet()
    first = exit_costs_for(model, (3, 32, 32))
    nn.Linear(4, 4)  # built elsewhere: the generation moves, the fingerprint does not
    assert exit_costs_for(model, (3, 32, 32)) is first


def test_forget_exit_costs_after_a_change_the_cache_cannot_see() -> None:
    model = _ranet()
    stale = exit_costs_for(model, (3, 32, 32)).tolist()
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride == (1, 1))
    conv.stride = (2, 2)  # no assignment of a module, parameter or buffer
    forget_exit_costs(model)
    fresh = exit_costs_for(model, (3, 32, 32)).tolist()
    assert fresh == [c.macs for c in measure_exit_costs(model, 32)] != stale
