"""``export_stages``: an early-exit network as one static graph per exit, run as a network.

An adanet network already runs exit by exit (see :mod:`adanet.models.early_exit_network`):
:meth:`begin` makes a state, :meth:`advance` carries it to the next exit.
:func:`export_stages` cuts the network there and exports each piece with
:func:`torch.export.export`:

* stage 0 takes the image batch and returns exit 0's logits and the state after it;
* stage ``k > 0`` takes the state after exit ``k - 1`` and returns exit ``k``'s logits and the
  state after exit ``k`` (the last stage returns its logits only: nobody needs its state).

The state is passed as a flat tuple of batch-first tensors (the network's nesting of lists,
dicts and dataclasses is rebuilt inside the graph; a tensor that appears several times in the
state is passed once). The batch dimension is dynamic, so one set of programs serves any batch
size. What stays on the host is the routing: the policy's decision after each exit and the
compaction of the state to the samples that remain: :class:`ExportedNetwork` puts the
programs behind the early-exit protocol, so :func:`adanet.early_exit` runs them with any
policy. Each graph is static, so the exported stages need no data-dependent control flow
(``torch.cond``) and convert to ONNX (:mod:`adanet.deploy.onnx`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from adanet.deploy.stage_network import StageNetwork
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.models.state import (
    StateSpec,
    StateStructureError,
    flatten_like,
    flatten_state,
    spec_size,
    unflatten_state,
)
from adanet.models.walk import ExitWalk

__all__ = ["ExportedNetwork", "StageExportError", "export_stages", "state_signature"]


class StageExportError(RuntimeError):
    """A stage of a network could not be exported.

    Attributes:
        stage: The stage (exit index) that failed.
        operator: The operator the exporter could not handle, when its message names one.
    """

    def __init__(self, stage: int, operator: str | None, detail: str) -> None:
        self.stage = stage
        self.operator = operator
        where = f"stage {stage} (exit {stage})"
        what = f" at operator {operator}" if operator else ""
        super().__init__(f"could not export {where}{what}: {detail}")


_OPERATOR = re.compile(
    r"(aten[.:]{1,2}[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)?|[A-Za-z_]\w*::[A-Za-z_]\w*(?:\.\w+)?"
    r"|[A-Za-z_]\w*\.[A-Za-z_]\w*\.default)"
)


def _operator_in(message: str) -> str | None:
    """The first operator name (``aten.foo``, ``ns::op``, ``ns.op.default``) in ``message``."""
    match = _OPERATOR.search(message)
    return match.group(1) if match else None


def _stage_error(stage: int, error: BaseException) -> StageExportError:
    """A :class:`StageExportError` for ``stage`` describing ``error``."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return StageExportError(stage, _operator_in(text), f"{type(error).__name__}: {first[:500]}")


# ------------------------------------------------------------------ the stages


class _Stage(nn.Module):
    """Exit ``index`` of ``network`` as a module over flat tensors (what gets exported)."""

    def __init__(
        self,
        network: EarlyExitNetwork,
        index: int,
        in_spec: StateSpec | None,
        out_spec: StateSpec | None,
    ) -> None:
        super().__init__()
        self.network = network
        self.index = index
        self.in_spec = in_spec
        self.out_spec = out_spec
        self.out_count = 0 if out_spec is None else spec_size(out_spec)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if self.in_spec is None:
            state = self.network.begin(inputs[0])
        else:
            state = unflatten_state(self.in_spec, inputs)
        feature, state = self.network.advance(state, self.index)
        logits = self.network.exits[self.index](feature)
        if self.out_spec is None:
            return (logits,)
        flat: list[Tensor | None] = [None] * self.out_count
        try:
            flatten_like(self.out_spec, state, flat)
        except StateStructureError as error:
            raise StageExportError(
                self.index,
                None,
                "the state's structure differs between two runs of the same stage; advance() "
                f"must return the same nesting of containers whatever the batch ({error})",
            ) from None
        return (logits, *[t for t in flat if t is not None])


@dataclass(frozen=True)
class _Probe:
    """What one eager run tells about every stage boundary."""

    specs: list[StateSpec]  # state spec after each exit but the last
    inputs: list[tuple[Tensor, ...]]  # example flat inputs of each stage
    shapes: list[list[tuple[int, ...]]]  # per-sample shapes of the state after each exit
    dtypes: list[list[torch.dtype]]


def _probe(model: EarlyExitNetwork, x: Tensor) -> _Probe:
    specs: list[StateSpec] = []
    inputs: list[tuple[Tensor, ...]] = [(x,)]
    shapes: list[list[tuple[int, ...]]] = []
    dtypes: list[list[torch.dtype]] = []
    with torch.no_grad():
        walk = ExitWalk(model, x)
        for k in range(model.num_exits - 1):
            walk.advance()
            tensors, spec = flatten_state(walk.state)
            for i, tensor in enumerate(tensors):
                if tensor.dim() == 0 or tensor.shape[0] != x.shape[0]:
                    raise StageExportError(
                        k,
                        None,
                        f"state tensor {i} after exit {k} has shape {tuple(tensor.shape)}; every "
                        f"tensor of the state must be batch-first (batch {x.shape[0]})",
                    )
            specs.append(spec)
            inputs.append(tuple(tensors))
            shapes.append([tuple(t.shape[1:]) for t in tensors])
            dtypes.append([t.dtype for t in tensors])
    return _Probe(specs, inputs, shapes, dtypes)


def _example_batch(model: EarlyExitNetwork, example_input: Tensor) -> Tensor:
    model.check_input(example_input)
    # torch.export specialises a dimension whose example size is 0 or 1, so an example batch
    # of one image is repeated to two for the batch to stay dynamic.
    if example_input.shape[0] < 2:
        return example_input.expand(2, *example_input.shape[1:]).contiguous()
    return example_input


def state_signature(
    model: EarlyExitNetwork, example_input: Tensor
) -> list[list[tuple[tuple[int, ...], torch.dtype]]]:
    """Per-sample shape and dtype of each flat state tensor after each exit but the last.

    Entry ``k`` describes what stage ``k`` returns after its logits (and stage ``k + 1``
    takes), in order, without the batch dimension.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(f"expected an adanet.EarlyExitNetwork, got {type(model).__name__}")
    probe = _probe(model, _example_batch(model, example_input))
    return [list(zip(s, d, strict=True)) for s, d in zip(probe.shapes, probe.dtypes, strict=True)]


def export_stages(
    model: EarlyExitNetwork, example_input: Tensor
) -> list[torch.export.ExportedProgram]:
    """Export ``model`` as one program per exit, with a dynamic batch dimension.

    Program ``k`` takes stage ``k``'s inputs (the image batch for ``k = 0``, else the flat
    state tensors program ``k - 1`` returned after its logits) and returns ``(logits,
    *state)``; the last program returns ``(logits,)``. Run them with
    :func:`adanet.early_exit` on an :class:`ExportedNetwork`.

    Args:
        model: A network following adanet's early-exit protocol; it must be in eval mode (the
            programs keep BatchNorm's running statistics).
        example_input: ``[N, C, H, W]`` images of the size the programs will see; any batch
            size (the batch dimension stays dynamic, the others are fixed).

    Returns:
        ``model.num_exits`` programs, in exit order.

    Raises:
        TypeError: ``model`` does not follow the protocol.
        RuntimeError: The model is in train mode.
        StageExportError: A stage could not be exported; the message names the stage and,
            when the exporter says, the operator.
    """
    if not isinstance(model, EarlyExitNetwork):
        raise TypeError(
            f"export_stages needs an adanet.EarlyExitNetwork, got {type(model).__name__}"
        )
    if model.training:
        raise RuntimeError(
            "export_stages needs the model in eval mode (call model.eval()): the exported "
            "stages use BatchNorm's running statistics"
        )
    x = _example_batch(model, example_input)
    probe = _probe(model, x)
    batch = torch.export.Dim("batch", min=1)
    programs: list[torch.export.ExportedProgram] = []
    for k in range(model.num_exits):
        in_spec = probe.specs[k - 1] if k > 0 else None
        out_spec = probe.specs[k] if k < model.num_exits - 1 else None
        stage = _Stage(model, k, in_spec, out_spec).eval()
        args = probe.inputs[k]
        dynamic = tuple({0: batch} for _ in args)
        try:
            with torch.no_grad():
                programs.append(torch.export.export(stage, args, dynamic_shapes=(dynamic,)))
        except StageExportError:
            raise
        except Exception as error:
            raise _stage_error(k, error) from error
    return programs


# ------------------------------------------------------------------ the runner


class ExportedNetwork(StageNetwork):
    """The programs of :func:`export_stages` as an :class:`~adanet.EarlyExitNetwork`.

    Its state is the flat list of state tensors the programs pass on, :meth:`advance` runs
    program ``k``, and its heads are identities (each program ends in its exit's head). So
    :func:`adanet.early_exit` runs the exported programs with real batched early exit, the
    same engine, checks and policies as the eager network, and ``network(x)`` gives every
    exit's logits.

    Args:
        programs: The programs of :func:`export_stages`, in exit order.
        costs: Cumulative cost of each exit for one image in ``convention`` (e.g. the MACs of
            :func:`adanet.measure_exit_costs` on the eager network); without them
            :func:`adanet.early_exit` counts the programs' operations.
        convention: The cost convention of ``costs``.

    Raises:
        ValueError: No programs, or not one valid cost per program.
    """

    def __init__(
        self,
        programs: Sequence[torch.export.ExportedProgram],
        costs: Sequence[float] | None = None,
        *,
        convention: str = "actual",
    ) -> None:
        if not programs:
            raise ValueError("ExportedNetwork needs at least one program, got none")
        super().__init__(len(programs), _input_shape(programs[0]))
        # .module() builds a callable GraphModule; build each once, not per batch.
        self.stages = nn.ModuleList([program.module() for program in programs])
        if costs is not None:
            self.register_costs(convention, costs)

    def advance(self, state: list[Tensor], exit_index: int) -> tuple[Tensor, list[Tensor]]:
        """Run program ``exit_index``: its logits (passed on by its identity head) and the
        state after it."""
        logits, *after = self.stages[exit_index](*state)
        return logits, list(after)


def _input_shape(program: torch.export.ExportedProgram) -> tuple[int, ...]:
    """``(C, H, W)`` of the images the first program was exported for."""
    names = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            return tuple(int(v) for v in node.meta["val"].shape[1:])
    raise ValueError("the first program takes no image input; pass export_stages' programs")
