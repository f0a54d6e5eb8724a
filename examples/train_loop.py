"""Your own training loop with adanet's pieces.

A RANet from a preset (its width and depth trimmed for a quick run), the digits data, the
multi-exit loss and the original learning-rate schedule; then every exit's accuracy, a
budgeted sweep calibrated on the validation split, and one policy run with real early exit.
Runs on CUDA when there is one, else on the CPU (about a minute there with the defaults)::

    python examples/train_loop.py --epochs 1
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from adanet import RANet, RANetConfig, budgeted_sweep, early_exit
from adanet.data import build_datasets, build_loaders
from adanet.measure.evaluation import evaluate_anytime
from adanet.training import learning_rate_at, set_learning_rate
from adanet.training.losses import MultiExitLoss


def main() -> None:
    """Train for ``--epochs`` epochs, then evaluate anytime and budgeted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.1)
    options = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)

    # The budgeted CIFAR preset, narrowed: digits are easy and this should run in a minute.
    config = dataclasses.replace(
        RANetConfig.preset("cifar10_budgeted"), num_channels=8, growth_rate=4, step=1
    )
    model = RANet(config).to(device)
    splits = build_datasets("digits", None, use_valid=True, seed=0)
    train_loader, val_loader, test_loader = build_loaders(splits, batch_size=64, workers=0)
    assert val_loader is not None  # use_valid=True holds out a validation split

    loss_fn = MultiExitLoss("ce")
    optimizer = torch.optim.SGD(model.parameters(), lr=options.lr, momentum=0.9, weight_decay=1e-4)
    batches = len(train_loader)
    for epoch in range(options.epochs):
        model.train()
        total = 0.0
        for index, (images, targets) in enumerate(train_loader):
            lr = learning_rate_at(epoch, index, batches, options.lr, options.epochs, "cosine")
            set_learning_rate(optimizer, lr)
            images, targets = images.to(device), targets.to(device)
            loss = loss_fn(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        print(f"epoch {epoch}: mean loss {total / batches:.3f}")

    # One pass per split gives every exit's logits; costs are MACs per image ("actual").
    test = evaluate_anytime(model, test_loader)
    val = evaluate_anytime(model, val_loader, costs=[r.macs for r in test.records])
    for record in test.records:
        print(f"exit {record.exit}: {record.macs / 1e6:6.2f} MMACs  top-1 {record.top1:.3f}")

    costs = [r.macs for r in test.records]
    sweep = budgeted_sweep(val.logits, val.targets, test.logits, test.targets, costs)
    half = max((r for r in sweep if r.mean_cost <= 0.5 * costs[-1]), key=lambda r: r.accuracy)
    print(
        f"budgeted, p={half.p:.2f}: top-1 {half.accuracy:.3f} at "
        f"{half.mean_cost / 1e6:.2f} MMACs (simulated on the logits)"
    )

    # The same policy for real: the network stops computing for samples that leave.
    model.eval()
    images, targets = next(iter(test_loader))
    result = early_exit(model, images.to(device), half.policy, costs=costs)
    correct = (result.logits.argmax(dim=1).cpu() == targets).float().mean()
    print(
        f"real early exit on one batch: top-1 {float(correct):.3f}, mean "
        f"{result.mean_cost / 1e6:.2f} MMACs, exits {result.exit_index.tolist()[:16]}..."
    )


if __name__ == "__main__":
    main()
