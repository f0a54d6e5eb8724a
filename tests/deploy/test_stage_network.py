"""``StageNetwork``: a network of one precompiled stage per exit, driven through the
early-exit protocol. Tried with stages written by hand, so that what the base adds (input
checks, recorded costs, flat state compacted by the engine) is tested on its own."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import adanet
from adanet import EarlyExitPolicy
from adanet.deploy.stage_network import StageNetwork


class _HandStages(StageNetwork):
    """Three stages over a flat state ``[images, running sum]``: stage ``k`` adds the channel
    means of the images to the running sum and gives it as exit ``k``'s logits. Every call
    records the batch size each stage saw."""

    def __init__(self) -> None:
        super().__init__(3, (2, 4, 4))
        self.seen: list[tuple[int, int]] = []

    def advance(self, state: list[Tensor], exit_index: int) -> tuple[Tensor, list[Tensor]]:
        images = state[0]
        total = state[1] if len(state) > 1 else torch.zeros(images.shape[0], 2)
        self.seen.append((exit_index, images.shape[0]))
        total = total + (exit_index + 1) * images.mean(dim=(2, 3))
        return total, [images, total]


def _images(n: int) -> Tensor:
    torch.manual_seed(0)
    return torch.randn(n, 2, 4, 4)


def test_forward_runs_every_stage_in_order() -> None:
    network = _HandStages()
    x = _images(5)
    logits = network(x)
    means = x.mean(dim=(2, 3))
    assert len(logits) == 3
    for k, got in enumerate(logits):
        torch.testing.assert_close(got, means * sum(range(1, k + 2)))
    assert network.seen == [(0, 5), (1, 5), (2, 5)]


def test_early_exit_compacts_the_flat_state_between_stages() -> None:
    network = _HandStages()
    network.register_costs("actual", [1.0, 2.0, 3.0])
    # Image i is +c_i in channel 0 and -c_i in channel 1, so exit 0's logits are (c_i, -c_i)
    # and its max-prob confidence sigmoid(2|c_i|): far above 0.75 for |c| >= 1.5 (0.95 and
    # more), far below it for |c| <= 0.2 (0.6 and less). No sample sits near the threshold.
    c = torch.tensor([0.0, 0.1, 1.5, -2.0, 0.05, 3.0, -0.2, 2.0])
    x = torch.stack([c, -c], dim=1)[:, :, None, None].expand(8, 2, 4, 4).contiguous()
    policy = EarlyExitPolicy([0.75, -math.inf, -math.inf])
    result = adanet.early_exit(network, x, policy, buckets=None)
    assert result.exit_index.tolist() == [1, 1, 0, 0, 1, 0, 1, 0]
    assert network.seen == [(0, 8), (1, 4)]  # stage 1 got only the samples that stayed
    full = network(x)
    for i, k in enumerate(result.exit_index.tolist()):
        torch.testing.assert_close(result.logits[i], full[k][i])
    assert result.cost.tolist() == [float(k + 1) for k in result.exit_index.tolist()]


def test_costs_are_known_only_for_the_exported_input_size() -> None:
    network = _HandStages()
    assert network.known_exit_costs((2, 4, 4), "actual") is None
    network.register_costs("actual", [1, 2, 3])
    assert list(network.known_exit_costs((2, 4, 4), "actual") or []) == [1.0, 2.0, 3.0]
    assert network.known_exit_costs((2, 8, 8), "actual") is None
    assert network.known_exit_costs((2, 4, 4), "reference") is None


@pytest.mark.parametrize("costs", [[1.0, 2.0], [3.0, 2.0, 1.0], [1.0, math.nan, 3.0]])
def test_bad_recorded_costs_are_refused(costs: list[float]) -> None:
    with pytest.raises(ValueError, match="cost"):
        _HandStages().register_costs("actual", costs)


def test_images_of_another_size_are_refused() -> None:
    network = _HandStages()
    with pytest.raises(ValueError, match=r"exported for images of \(2, 4, 4\), got \(2, 8, 8\)"):
        network(torch.randn(1, 2, 8, 8))


def test_heads_cannot_be_replaced_and_training_mode_is_refused_quietly() -> None:
    network = _HandStages()
    with pytest.raises(TypeError, match="compiled into its stages"):
        network.reset_classifier(4)
    assert network.train() is network and not network.training
