"""The run report's wall-time section: real early exit against the static network, in time.

For every budget point of a run (each a calibrated policy), :func:`measure_wall_times` times
:func:`adanet.early_exit` under that policy next to the static network run to its last exit
only (:func:`adanet.run_to_exit`) and the all-exit forward, on a stream of distinct test
batches (:func:`adanet.measure.timing.time_stream`: warm-up on the first batches, every way
once per batch, interleaved). It does so for each way of running the network the caller
gives: the eager model, its :func:`adanet.optimize_for_inference` copy and, where the
``onnx`` extra is installed, its ONNX Runtime stages (:class:`adanet.deploy.onnx.
OnnxRuntimeNetwork` through :func:`adanet.early_exit`). Each budget point gets its MACs ratio
and its wall-time ratio, both against the last exit: the trade-off in time, not only in MACs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adanet.costs.counting import Convention, measure_exit_costs
from adanet.inference.buckets import BucketSpec, SizeBuckets
from adanet.inference.engine import EarlyExitResult, early_exit, run_to_exit
from adanet.measure.timing import time_stream
from adanet.models.early_exit_network import EarlyExitNetwork
from adanet.policies.protocol import ExitDecider

__all__ = [
    "BudgetTime",
    "PathTimes",
    "WallTimes",
    "measure_wall_times",
    "static_run_macs",
    "wall_time_lines",
]


@dataclass(frozen=True)
class BudgetTime:
    """One budget point timed on one way of running the network.

    Attributes:
        p: The budget's ``p``.
        macs_ratio: Mean MACs per image under early exit over the last exit's cumulative MACs
            (every head up to it included), as the budgeted table's "% of last exit".
        static_macs_ratio: Mean MACs per image under early exit over the MACs of this way's
            static run (for an eager model: the network to its last exit with the last head
            only): the MACs counterpart of ``time_ratio``.
        time_ratio: Early exit's wall time over the static last exit's, on the same batches.
        ms_per_image: Early exit's wall time per image.
    """

    p: float
    macs_ratio: float
    static_macs_ratio: float
    time_ratio: float
    ms_per_image: float


@dataclass(frozen=True)
class PathTimes:
    """Every budget point on one way of running the network (``"eager"``, ...).

    Attributes:
        name: The way's name.
        last_exit_ms: The static network to its last exit, ms per image.
        all_exits_ms: The all-exit forward ``model(x)``, ms per image.
        static_macs: MACs per image of the static run (``adanet.run_to_exit(model, x, -1)``).
        points: One :class:`BudgetTime` per budget point, in the order given.
    """

    name: str
    last_exit_ms: float
    all_exits_ms: float
    static_macs: float
    points: tuple[BudgetTime, ...]

    def at(self, p: float) -> BudgetTime:
        """The point of the budget nearest ``p``."""
        return min(self.points, key=lambda point: abs(point.p - p))


@dataclass(frozen=True)
class WallTimes:
    """What :func:`measure_wall_times` measured.

    Attributes:
        paths: One :class:`PathTimes` per way of running the network.
        p: The report's budget point (the cheapest within one point of the last exit).
        num_images: Images timed per way (warm-up excluded).
        batch_size: Largest batch timed.
        warmup_batches: Batches run untimed first, per way.
        buckets: The sub-batch buckets of early exit.
        threads: torch's intra-op threads.
        isa: The vector instruction set PyTorch's CPU kernels use.
    """

    paths: tuple[PathTimes, ...]
    p: float
    num_images: int
    batch_size: int
    warmup_batches: int
    buckets: str
    threads: int
    isa: str

    @property
    def recommended(self) -> PathTimes:
        """The way whose early exit is fastest at the report's budget point."""
        return min(self.paths, key=lambda path: path.at(self.p).ms_per_image)


class _LastHeadOnly(EarlyExitNetwork):
    """``network`` with every head but the last replaced by an identity: what
    :func:`adanet.run_to_exit` computes for the last exit, for counting its cost."""

    def __init__(self, network: EarlyExitNetwork) -> None:
        super().__init__()
        self.network = network
        self.in_channels = network.in_channels
        self.min_input_size = network.min_input_size
        keep = network.num_exits - 1
        self.exits = nn.ModuleList([*(nn.Identity() for _ in range(keep)), network.exits[-1]])

    def begin(self, x: Tensor) -> Any:
        return self.network.begin(x)

    def advance(self, state: Any, exit_index: int) -> tuple[Tensor, Any]:
        return self.network.advance(state, exit_index)


def static_run_macs(
    network: EarlyExitNetwork, image_shape: Sequence[int], convention: Convention = "actual"
) -> float:
    """MACs per image of ``adanet.run_to_exit(network, x, -1)``: the network to its last exit
    with the last head only (:func:`adanet.measure_exit_costs`' last cumulative cost also
    counts every earlier head, which the static network does not run).

    Raises:
        TypeError, ValueError: As :func:`adanet.measure_exit_costs`.
    """
    wrapper = _LastHeadOnly(network)
    # Counting restores the wrapper's training flag on everything in it, the network too:
    # give it the network's own flag.
    wrapper.train(network.training)
    costs = measure_exit_costs(wrapper, tuple(image_shape), convention)
    return costs[-1].macs


def _images(loader: Iterable[Any], device: torch.device | None) -> Iterator[Tensor]:
    for batch in loader:
        images = batch[0] if isinstance(batch, Sequence) else batch
        yield images if device is None else images.to(device)


def _early_exit_run(
    network: EarlyExitNetwork, policy: ExitDecider, costs: Sequence[float], buckets: BucketSpec
) -> Callable[[Tensor], object]:
    def run(x: Tensor) -> object:
        return early_exit(network, x, policy, costs=costs, buckets=buckets)

    return run


def _time_path(
    name: str,
    network: EarlyExitNetwork,
    loader: Iterable[Any],
    policies: Mapping[float, ExitDecider],
    costs: Sequence[float],
    options: Mapping[str, Any],
) -> tuple[PathTimes, int, int]:
    """One way timed on the stream; also the images timed and the largest batch."""
    buckets = options["buckets"]
    runs: dict[str, Callable[[Tensor], object]] = {
        "last": lambda x: run_to_exit(network, x, -1),
        "all": network,
    }
    for p, policy in policies.items():
        runs[f"p={p!r}"] = _early_exit_run(network, policy, costs, buckets)
    paid = dict.fromkeys(runs, 0.0)
    scored = dict.fromkeys(runs, 0)

    def record(way: str, batch: Tensor, result: object) -> None:
        if isinstance(result, EarlyExitResult):
            paid[way] += float(result.cost.sum())
            scored[way] += int(batch.shape[0])

    weight = next((p for p in network.parameters() if p.is_floating_point()), None)
    device = None if weight is None else weight.device
    with torch.no_grad():
        times = time_stream(
            runs,
            _images(loader, device),
            warmup=options["warmup_batches"],
            max_images=options["max_images"],
            device=device,
            on_result=record,
        )
    if times.num_images == 0:
        raise ValueError(
            f"no test batch was left to time after {options['warmup_batches']} warm-up batches"
        )
    # The MACs ratios are over every image early exit ran, the warm-up batches included.
    static = float(options["static_macs"].get(name, costs[-1]))
    points = tuple(
        BudgetTime(
            p=p,
            macs_ratio=paid[f"p={p!r}"] / scored[f"p={p!r}"] / costs[-1],
            static_macs_ratio=paid[f"p={p!r}"] / scored[f"p={p!r}"] / static,
            time_ratio=times.ratio(f"p={p!r}", "last"),
            ms_per_image=1e3 * times.per_image(f"p={p!r}"),
        )
        for p in policies
    )
    last, every = 1e3 * times.per_image("last"), 1e3 * times.per_image("all")
    return PathTimes(name, last, every, static, points), times.num_images, max(times.images)


def measure_wall_times(
    networks: Mapping[str, EarlyExitNetwork],
    loader: Iterable[Any],
    policies: Mapping[float, ExitDecider],
    *,
    costs: Sequence[float],
    p: float,
    max_images: int = 1024,
    warmup_batches: int = 2,
    buckets: BucketSpec = "auto",
    static_macs: Mapping[str, float] | None = None,
) -> WallTimes:
    """Time every budget point's early exit against the static last exit, on a stream.

    Each network is timed on its own pass over ``loader`` (the first ``warmup_batches``
    batches untimed, then up to ``max_images`` images), every way (each policy's early exit,
    the static last exit, the all-exit forward) once per batch, in rotating order.

    Args:
        networks: Ways of running the same network, by name (``{"eager": model, ...}``).
        loader: Yields ``(images, targets)`` batches (or image batches); iterated once per
            network.
        policies: The budget points' policies, by ``p``.
        costs: The cumulative MACs of each exit, charged by early exit.
        p: The report's budget point.
        max_images: Images timed per network.
        warmup_batches: Batches run untimed first, per network.
        buckets: Sub-batch buckets of early exit.
        static_macs: Per network, the MACs per image of its static run to the last exit
            (:func:`static_run_macs`); ``costs[-1]`` for a network not listed.

    Returns:
        The ratios and times of every way and budget point.

    Raises:
        ValueError: No network or policy, or no batch left to time after the warm-up.
    """
    if not networks or not policies:
        raise ValueError("measure_wall_times needs at least one network and one policy")
    options = {
        "buckets": buckets,
        "warmup_batches": warmup_batches,
        "max_images": max_images,
        "static_macs": dict(static_macs or {}),
    }
    paths, timed, batch = [], 0, 0
    for name, network in networks.items():
        was_training = network.training
        network.eval()
        try:
            path, timed, batch = _time_path(name, network, loader, policies, costs, options)
        finally:
            network.train(was_training)
        paths.append(path)
    return WallTimes(
        paths=tuple(paths),
        p=p,
        num_images=timed,
        batch_size=batch,
        warmup_batches=warmup_batches,
        buckets=str(SizeBuckets.parse(buckets)),
        threads=torch.get_num_threads(),
        isa=torch.backends.cpu.get_cpu_capability(),
    )


def wall_time_lines(wall: WallTimes, device: str, prefix: str = "") -> list[str]:
    """The markdown of the report's wall-time section."""
    best = wall.recommended
    lines = [
        "## Wall time per image",
        "",
        f"{wall.num_images} test images in batches of {wall.batch_size}, after "
        f"{wall.warmup_batches} warm-up batches of other test images, on {device} "
        f"({wall.threads} threads, CPU kernels {wall.isa}); every way runs on each batch in "
        f"turn (data loading excluded), early exit with sub-batch buckets: {wall.buckets}. "
        "Time ratios are against the static network run to its last exit only "
        "(`adanet.run_to_exit`) on the same batches. Two MACs ratios: against the last exit's "
        "cumulative MACs (every head up to it, as in the budgeted table), and against the MACs "
        "of the static run, which skips the earlier heads (for ONNX Runtime the static run is "
        "every stage, each with its head, so the two are the same).",
        "",
        f"| way | static last exit (ms / image) | all exits (ms / image) | early exit at "
        f"p = {wall.p:.2f} (ms / image) | time ratio | MACs ratio | MACs ratio vs static run |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for path in wall.paths:
        point = path.at(wall.p)
        lines.append(
            f"| {path.name} | {path.last_exit_ms:.3f} | {path.all_exits_ms:.3f} | "
            f"{point.ms_per_image:.3f} | {point.time_ratio:.2f} | {point.macs_ratio:.2f} | "
            f"{point.static_macs_ratio:.2f} |"
        )
    names = " | ".join(f"{path.name}: time (MACs vs static)" for path in wall.paths)
    lines += [
        "",
        f"Fastest early exit at p = {wall.p:.2f}: **{best.name}**. Every budget point; the last "
        f"two columns are {best.name}'s time ratio minus each MACs ratio:",
        "",
        f"| p | MACs ratio | {names} | time − MACs | time − MACs vs static |",
        "|---:|---:|" + "---:|" * len(wall.paths) + "---:|---:|",
    ]
    for index, point in enumerate(best.points):
        cells = " | ".join(
            f"{path.points[index].time_ratio:.2f} ({path.points[index].static_macs_ratio:.2f})"
            for path in wall.paths
        )
        lines.append(
            f"| {point.p:.2f} | {point.macs_ratio:.2f} | {cells} | "
            f"{point.time_ratio - point.macs_ratio:+.2f} | "
            f"{point.time_ratio - point.static_macs_ratio:+.2f} |"
        )
    lines += ["", f"![Wall time against MACs]({prefix}wall_time.png)", ""]
    return lines
