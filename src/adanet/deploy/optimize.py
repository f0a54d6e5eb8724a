"""``optimize_for_inference``: an equivalent, faster copy of a network for evaluation."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from adanet.blocks.dense_buffers import use_dense_buffers
from adanet.models.early_exit_network import EarlyExitNetwork

__all__ = ["compile_for_early_exit", "optimize_for_inference"]

Network = TypeVar("Network", bound=EarlyExitNetwork)


def _fold(module: nn.Module) -> None:
    """Fold every BatchNorm that directly follows a Conv2d in a Sequential into the conv."""
    for child in list(module.children()):
        _fold(child)
    if not isinstance(module, nn.Sequential):
        return
    index = 0
    while index < len(module) - 1:
        first, second = module[index], module[index + 1]
        if (
            isinstance(first, nn.Conv2d)
            and isinstance(second, nn.BatchNorm2d)
            and second.running_mean is not None
            and second.running_var is not None
        ):
            module[index] = fuse_conv_bn_eval(first, second)
            del module[index + 1]
        index += 1


def optimize_for_inference(
    model: Network,
    *,
    memory_format: torch.memory_format = torch.channels_last,
    dense_buffers: bool | None = None,
) -> Network:
    """Return an equivalent copy of ``model`` for evaluation.

    The copy is in eval mode without gradients; every BatchNorm that follows a convolution is
    folded into it (pre-activation norms stay), and its parameters use ``memory_format``, so
    the convolutions run channels-last. Outputs equal the original's up to float rounding;
    inputs need no conversion (the first convolution switches the layout). The copy follows
    the same early-exit protocol, so :func:`adanet.early_exit` and
    :func:`adanet.measure_exit_costs` work on it (the latter counts no normalisation for it:
    the folded model really does less). The original model is not modified.

    With dense buffers, dense blocks write their features into one preallocated buffer per
    block instead of concatenating them layer by layer (see
    :mod:`adanet.blocks.dense_buffers`); the blocks' features then travel as
    :class:`~adanet.blocks.dense_buffers.PrefixFeatures`, and early exit's compaction selects
    the rows of each buffer once.

    Args:
        model: The trained network.
        memory_format: Memory format of the conv weights. Channels-last (the default) is
            what makes the copy fast: folding alone gains little and channels-last alone
            slows the BatchNorms, together they are faster (``docs/benchmarks.md``).
        dense_buffers: ``True``: RANet's and MSDNet's dense blocks write into preallocated
            buffers (no ``torch.cat`` copies of the growing feature maps). ``False``: every
            block runs its own ``forward``. ``None`` (the default): RANet's blocks only,
            because that is where buffers measured faster; MSDNet's wider 1×1 convolutions
            run slower as the in-place matrix product than as oneDNN convolutions on a
            contiguous copy, which outweighs the copies saved (``benchmarks/bench_speed.py``,
            figures in ``docs/benchmarks.md``).

    Returns:
        The optimized copy.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"optimize_for_inference needs an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    optimized = copy.deepcopy(model).eval()
    _fold(optimized)
    optimized.requires_grad_(False)
    optimized = optimized.to(memory_format=memory_format)
    if dense_buffers is not False:
        use_dense_buffers(optimized, multiscale_blocks=dense_buffers is True)
    return optimized


def _outermost_called_modules(model: nn.Module, example: Tensor) -> list[nn.Module]:
    """The submodules that ``model``'s own code calls directly, in call order."""
    depth = [0]
    called: dict[int, nn.Module] = {}

    def enter(module: nn.Module, inputs: object) -> None:
        if depth[0] == 0:
            called.setdefault(id(module), module)
        depth[0] += 1

    def leave(module: nn.Module, inputs: object, output: object) -> None:
        depth[0] -= 1

    handles = []
    for name, module in model.named_modules():
        if name:  # not the model itself
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return list(called.values())


# Before torch.compile took a recompile_limit argument, the limit was only a private Dynamo
# setting: "recompile_limit" since torch 2.7, "cache_size_limit" before (the newer name is
# preferred where both exist).
_RECOMPILE_LIMIT_NAMES = ("recompile_limit", "cache_size_limit")


def _compile_takes_recompile_limit() -> bool:
    """Whether this torch's public ``torch.compile`` accepts ``recompile_limit``."""
    return "recompile_limit" in inspect.signature(torch.compile).parameters


def _recompile_limit_name() -> str:
    """The name of Dynamo's private recompile limit in this torch, by feature detection."""
    import torch._dynamo

    for name in _RECOMPILE_LIMIT_NAMES:
        if hasattr(torch._dynamo.config, name):
            return name
    raise RuntimeError(
        f"compile_for_early_exit cannot set Dynamo's recompile limit in torch "
        f"{torch.__version__}: torch.compile takes no recompile_limit and "
        f"torch._dynamo.config has none of {list(_RECOMPILE_LIMIT_NAMES)}. Compile the model "
        "with torch.compile instead, or use a torch version listed in docs/compatibility.md"
    )


class _ScopedCompiledForward:
    """A module's compiled ``forward`` that raises Dynamo's private recompile limit during
    each call only, leaving the process-wide setting as it was (for torch versions whose
    ``torch.compile`` takes no ``recompile_limit``).

    The limit is read when Dynamo decides whether to compile one more variant, which happens
    inside a call (compilation is lazy), so the patch has to cover the calls, not the
    ``torch.compile`` call itself.
    """

    def __init__(self, compiled: Callable[..., Any], name: str, limit: int) -> None:
        self._compiled = compiled
        self._name = name
        self._limit = limit

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch._dynamo

        if getattr(torch._dynamo.config, self._name) >= self._limit:
            return self._compiled(*args, **kwargs)
        with torch._dynamo.config.patch(self._name, self._limit):
            return self._compiled(*args, **kwargs)


def compile_for_early_exit(model: Network, example: Tensor, **compile_kwargs: Any) -> Network:
    """Compile the parts of ``model`` that early exit runs, with a dynamic batch size.

    ``torch.compile(model)`` compiles ``forward`` only, but :func:`adanet.early_exit` drives
    the network through ``begin``/``advance`` and the exit heads, on batches that shrink as
    samples leave. This compiles, in place, the ``forward`` of every submodule the network's
    own code calls directly (found by running ``example`` once: for RANet the stem, each
    block and each head) with ``dynamic=True``, so the batch dimension is symbolic and a new
    batch size does not trigger a recompilation (a few size ranges, e.g. batch 1 which
    PyTorch specialises, may compile once more each). Forward hooks registered on those
    submodules, before or after, still run eagerly around the compiled code.

    The parts share code objects (blocks of one class share their ``forward``), and Dynamo
    keeps at most its recompile limit (8 by default) of compiled variants per code object,
    then silently runs the rest eagerly. The parts are therefore compiled with a limit of
    ``4 * parts``: through ``torch.compile(..., recompile_limit=...)`` where this torch has
    that argument, otherwise by raising Dynamo's private limit with a scoped
    ``torch._dynamo.config.patch`` during each compiled call. The process-wide setting is
    never changed.

    Args:
        model: The network (typically after :func:`optimize_for_inference`).
        example: A batch of the input size to be used (batch size >= 2).
        **compile_kwargs: Passed to :func:`torch.compile` (e.g. ``backend``, ``mode``).

    Returns:
        ``model``, its parts compiled.

    Raises:
        TypeError: ``model`` is not an :class:`~adanet.EarlyExitNetwork`.
        RuntimeError: This torch offers no way to set the recompile limit that adanet
            knows.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"compile_for_early_exit needs an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    model.check_input(example)
    public = _compile_takes_recompile_limit()
    name = "" if public else _recompile_limit_name()
    units = _outermost_called_modules(model, example)
    limit = 4 * len(units)
    options = dict(compile_kwargs)
    if public:
        options.setdefault("recompile_limit", limit)
    for module in units:
        compiled = torch.compile(module.forward, dynamic=True, **options)
        # An instance attribute shadows the class's forward; nn.Module.__call__ still runs
        # the hooks around it.
        module.forward = compiled if public else _ScopedCompiledForward(compiled, name, limit)
    return model
