"""Compose your own early-exit network from adanet's blocks, then use every adanet tool on it.

``TinyMultiScaleNet`` has two scales. A coarse branch (1/8 of the image size) carries exits 0
and 1; a finer branch (1/4) fuses the coarse branch's features block by block and carries
exits 2 and 3. The class only says how to start (:meth:`TinyMultiScaleNet.begin`) and how to
reach the next exit (:meth:`TinyMultiScaleNet.advance`); cost measurement, policies, real early
exit, anytime evaluation and the budgeted sweep then work with no further code.

Run it with ``python examples/custom_network.py`` (about 15 seconds on a CPU): it trains
one epoch on scikit-learn's digits and prints costs, per-exit accuracy, a policy run for real
and part of a budgeted sweep. The recipe is explained in
``docs/how-to/custom-network.md``.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

import adanet
from adanet.blocks import ExitHead, MultiScaleStem, ScaleBlock, ScaleBranch
from adanet.data import build_loaders, digits_datasets
from adanet.training.losses import MultiExitLoss


class TinyMultiScaleNet(adanet.EarlyExitNetwork):
    """Two scales, four exits: exits 0-1 on the coarse branch, 2-3 on the fine branch.

    Args:
        num_classes: Classes to predict.
        in_channels: Image channels.
        growth: Channels each dense layer adds.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, growth: int = 8) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.min_input_size = 8  # the coarse scale is 8 times smaller than the image
        # Base features: 16 channels at 1/4 of the image size (fine; the "imagenet" stem is a
        # 7x7/2 conv and a 3x3/2 max-pool), 32 channels at 1/8 (coarse).
        self.stem = MultiScaleStem(in_channels, [16, 32], [False, True], variant="imagenet")
        c0 = ScaleBlock(32, 2, growth)  # two DenseLayers: 32 -> 48 channels
        c1 = ScaleBlock(c0.out_channels, 2, growth)  # 48 -> 64 channels
        self.coarse = ScaleBranch([c0, c1])
        # Fused blocks (FusionBlocks inside): fine block b takes coarse block b's features.
        f0 = ScaleBlock(16, 2, growth, coarse_channels=c0.feature_channels)  # 16 -> 40
        f1 = ScaleBlock(  # 40 -> 70 channels, and down to the coarse resolution
            f0.out_channels, 2, growth, coarse_channels=c1.feature_channels, downsample=True
        )
        self.fine = ScaleBranch([f0, f1])
        widths = [c0.out_channels, c1.out_channels, f0.out_channels, f1.out_channels]
        self.exits = nn.ModuleList(ExitHead(w, num_classes, hidden_channels=32) for w in widths)

    def begin(self, x: Tensor) -> dict[str, Any]:
        fine, coarse = self.stem(x)  # [N, 16, H/4, W/4], [N, 32, H/8, W/8]
        # "x": the running feature; "fine": the fine branch's input, used at exit 2;
        # "coarse": per coarse block, its features (input and each layer's output) to fuse.
        return {"x": coarse, "fine": fine, "coarse": []}

    def advance(self, state: dict[str, Any], exit_index: int) -> tuple[Tensor, dict[str, Any]]:
        if exit_index < 2:  # coarse block k: [N, 32 + 16k, H/8, W/8] -> [N, 48 + 16k, H/8, W/8]
            x, features = self.coarse.blocks[exit_index](state["x"])
            return x, {**state, "x": x, "coarse": [*state["coarse"], features]}
        b = exit_index - 2  # fine block b, fed the coarse block b's features
        x = state["fine"] if b == 0 else state["x"]
        # b = 0: [N, 16, H/4, W/4] -> [N, 40, H/4, W/4]; b = 1: -> [N, 70, H/8, W/8]
        x, _ = self.fine.blocks[b](x, state["coarse"][b])
        return x, {**state, "x": x, "fine": None}  # None: select_samples passes it along


@adanet.models.register_model(name="tiny_multiscale")
def tiny_multiscale(**overrides: Any) -> TinyMultiScaleNet:
    """``TinyMultiScaleNet`` by name: ``adanet.create_model("tiny_multiscale", num_classes=5)``."""
    return TinyMultiScaleNet(**overrides)


def train_epoch(
    model: adanet.EarlyExitNetwork,
    loader: DataLoader[Any],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
) -> float:
    """Train ``model`` for one epoch on the summed loss of every exit.

    Args:
        model: The network (switched to train mode).
        loader: Yields ``(images, targets)`` batches.
        optimizer: Updates the model's parameters.
        loss_fn: Maps the list of every exit's logits and the targets to a scalar loss.

    Returns:
        The mean loss per batch over the epoch.
    """
    model.train()
    total, batches = 0.0, 0
    for images, targets in loader:
        loss = loss_fn(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, batches = total + loss.item(), batches + 1
    return total / max(batches, 1)


def main(epochs: int = 1) -> None:
    """Train ``TinyMultiScaleNet`` on digits, then measure, calibrate and exit early.

    Args:
        epochs: Training epochs on the 1,079 digits training images.
    """
    start = time.perf_counter()
    torch.manual_seed(0)
    splits = digits_datasets(seed=0)
    loaders = build_loaders(splits, batch_size=32, workers=0, pin_memory=False)
    assert loaders.val is not None  # digits_datasets holds out a validation split by default
    model = adanet.create_model(
        "tiny_multiscale", num_classes=splits.num_classes, in_channels=splits.in_channels
    )

    # 1. What leaving at each exit costs, for one image.
    costs = adanet.measure_exit_costs(model, splits.image_size)
    macs = [float(c.macs) for c in costs]
    print(f"TinyMultiScaleNet: {sum(p.numel() for p in model.parameters()):,} parameters")
    for c in costs:
        print(f"  exit {c.exit}: {c.macs / 1e6:6.2f} MMACs, {c.params:7,} parameters so far")

    # 2. A plain training loop on the sum of the exits' cross-entropies.
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        loss = train_epoch(model, loaders.train, optimizer, MultiExitLoss("ce"))
        print(f"epoch {epoch + 1}/{epochs}: mean training loss {loss:.3f} (summed over 4 exits)")

    # 3. Anytime evaluation: every exit's accuracy when every sample is classified there.
    val = adanet.evaluate_anytime(model, loaders.val, costs=macs)
    test = adanet.evaluate_anytime(model, loaders.test, costs=macs)
    print("anytime test accuracy:", "  ".join(f"{r.top1:.1%}" for r in test.records))

    # 4. A policy calibrated on the validation split for half the last exit's cost, run for
    #    real: samples leave the network and stop costing anything.
    policy = adanet.calibration.calibrate_for_cost(val.logits, macs, 0.5 * macs[-1])
    images, targets = next(iter(loaders.test))
    result = adanet.early_exit(model.eval(), images, policy, costs=macs)
    hits = int((result.logits.argmax(dim=1) == targets).sum())
    print(
        f"early_exit on {len(targets)} test images: {hits} right, exits "
        f"{result.exit_index.tolist()}, mean cost {result.mean_cost / 1e6:.2f} MMACs"
    )
    run = adanet.evaluate_policy(model, loaders.test, policy, costs=macs)
    shares = "/".join(f"{s:.0%}" for s in run.exit_fractions)
    print(
        f"policy on the test set: accuracy {run.accuracy:.1%} at {run.mean_cost / macs[-1]:.0%} "
        f"of the full cost (exit shares {shares})"
    )

    # 5. The budgeted sweep of RANet / MSDNet: accuracy against mean cost.
    records = adanet.budgeted_sweep(val.logits, val.targets, test.logits, test.targets, macs)
    print("budgeted sweep (mean MMACs -> test accuracy):")
    for record in records[::8]:
        print(f"  p={record.p:4.2f}: {record.mean_cost / 1e6:5.2f} -> {record.accuracy:.1%}")
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    torch.set_num_threads(1)  # tensors this small run faster on one thread than on several
    main()
