"""Compaction copies only state that a later stage reads.

Early exit compacts the state between exits (every tensor in it is gathered to the samples
that stay), so a tensor kept in the state but never read again is a copy for nothing. Here the
state after each exit is wrapped, tensor by tensor, in a subclass that records every torch
operation given it; the remaining exits then run, and every wrapped tensor must have been
read by one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor

import adanet
from adanet import EarlyExitNetwork
from adanet.models.state import flatten_state, unflatten_state
from adanet.models.walk import ExitWalk

pytestmark = pytest.mark.usefixtures("single_thread")


class _Tracked(Tensor):
    """A tensor that records, by tag, that an operation read it."""

    reads: ClassVar[set[int]] = set()
    tag: int

    @classmethod
    def __torch_function__(
        cls,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        # Reading a property (the shape, the device) is not reading the data.
        if getattr(func, "__name__", "") != "__get__":
            for value in [*args, *kwargs.values()]:
                for item in value if isinstance(value, list | tuple) else [value]:
                    if isinstance(item, _Tracked):
                        cls.reads.add(item.tag)
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)


def _unread_after_each_exit(model: EarlyExitNetwork, x: Tensor) -> dict[int, list[int]]:
    """Per exit, the state tensors (by position) that no later exit read."""
    unread: dict[int, list[int]] = {}
    with torch.no_grad():
        for k in range(model.num_exits - 1):
            walk = ExitWalk(model, x)
            for _ in range(k + 1):
                walk.advance()
            tensors, spec = flatten_state(walk.state)
            tracked = []
            for i, tensor in enumerate(tensors):
                wrapped = tensor.as_subclass(_Tracked)
                wrapped.tag = i
                tracked.append(wrapped)
            walk.state = unflatten_state(spec, tracked)
            _Tracked.reads = set()
            while not walk.done:
                walk.advance()
            unread[k] = sorted(set(range(len(tensors))) - _Tracked.reads)
    return unread


def _ranet(optimized: bool) -> EarlyExitNetwork:
    torch.manual_seed(0)
    # Exits 0-1 on the coarsest branch, exit 2 in the middle one (which fuses two blocks),
    # exit 3 in the finest: every kind of hand-over between branches.
    config = adanet.RANetConfig(num_blocks=2, block_step=1, num_channels=8, growth_rate=4, step=1)
    model = adanet.RANet(config).eval()
    return adanet.optimize_for_inference(model) if optimized else model


def _msdnet() -> EarlyExitNetwork:
    torch.manual_seed(0)
    config = adanet.MSDNetConfig(num_blocks=4, base=1, step=1, num_channels=4, growth_rate=4)
    return adanet.MSDNet(config).eval()


@pytest.mark.parametrize(
    "make",
    [lambda: _ranet(False), lambda: _ranet(True), _msdnet],
    ids=["ranet", "optimized_ranet", "msdnet"],
)
def test_every_state_tensor_is_read_by_a_later_exit(make: Callable[[], EarlyExitNetwork]) -> None:
    model = make()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    unread = _unread_after_each_exit(model, x)
    assert unread == {k: [] for k in range(model.num_exits - 1)}


def test_the_check_finds_a_tensor_nobody_reads() -> None:
    model = _ranet(False)
    advance = model.advance

    def hoarding(state: Any, exit_index: int) -> Any:
        feature, after = advance(state, exit_index)
        return feature, {**after, "hoard": feature.clone()}  # carried, never read

    model.advance = hoarding  # type: ignore[method-assign]
    x = torch.randn(2, 3, 32, 32)
    unread = _unread_after_each_exit(model, x)
    assert all(unread[k] for k in range(model.num_exits - 1))


def test_compaction_keeps_channels_last_feature_maps_channels_last() -> None:
    from adanet.models.state import select_samples

    planar = torch.randn(6, 5, 4, 3)
    channels_last = torch.randn(6, 5, 4, 3).contiguous(memory_format=torch.channels_last)
    index = torch.tensor([4, 0, 0, 5])
    out = select_samples({"a": planar, "b": [channels_last]}, index)
    assert torch.equal(out["a"], planar[index]) and out["a"].is_contiguous()
    assert torch.equal(out["b"][0], channels_last[index])
    assert out["b"][0].is_contiguous(memory_format=torch.channels_last)
    # Where autograd records, the gather stays differentiable.
    leaf = channels_last.clone().requires_grad_(True)
    picked = select_samples([leaf], index)[0]
    assert picked.is_contiguous(memory_format=torch.channels_last)
    picked.sum().backward()
    assert leaf.grad is not None and float(leaf.grad[0].sum()) == 2 * 5 * 4 * 3
