"""Independent transcription of the original MSDNet, used only as a test oracle.

This re-types the architecture of ``models/msdnet.py`` from the original MSDNet-PyTorch
repository (Huang et al., "Multi-Scale Dense Networks for Resource Efficient Image
Classification", ICLR 2018). Module classes, names and nesting are kept so that
``state_dict()`` keys are exactly the original's (``blocks``, ``classifier``, ``layers``,
``net``, ``conv_down``, ``conv_normal``, ``m``, ``linear``), and so is its behaviour: the
``AvgPool2d(2)`` heads, ``nOut // 2`` halves in ``ConvDownNormal``, ``stepmode`` other than
``'even'`` meaning linear growth, and the initialiser that only ever reaches the direct
children of each block and head (so it changes nothing). Only the prints are left out. It is
not part of adanet and must not be "fixed": it is the reference adanet is compared against.

``args`` is any object with the original's option attributes (``nBlocks``, ``base``, ``step``,
``stepmode``, ``nChannels``, ``growthRate``, ``grFactor`` and ``bnFactor`` as lists of ints,
``nScales``, ``bottleneck``, ``prune``, ``reduction``, ``data``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["MSDNet"]


class ConvBasic(nn.Module):
    def __init__(self, nIn: int, nOut: int, kernel: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(nIn, nOut, kernel_size=kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(nOut),
            nn.ReLU(True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvBN(nn.Module):
    """Optional 1×1 bottleneck, then a 3×3 conv ('normal': stride 1, 'down': stride 2)."""

    def __init__(self, nIn: int, nOut: int, type: str, bottleneck: bool, bnWidth: int):
        super().__init__()
        layer: list[nn.Module] = []
        nInner = nIn
        if bottleneck is True:
            nInner = min(nInner, bnWidth * nOut)
            layer += [
                nn.Conv2d(nIn, nInner, kernel_size=1, stride=1, padding=0, bias=False),
                nn.BatchNorm2d(nInner),
                nn.ReLU(True),
            ]
        if type == "normal":
            stride = 1
        elif type == "down":
            stride = 2
        else:
            raise ValueError(type)
        layer += [
            nn.Conv2d(nInner, nOut, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(nOut),
            nn.ReLU(True),
        ]
        self.net = nn.Sequential(*layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvDownNormal(nn.Module):
    def __init__(
        self, nIn1: int, nIn2: int, nOut: int, bottleneck: bool, bnWidth1: int, bnWidth2: int
    ):
        super().__init__()
        self.conv_down = ConvBN(nIn1, nOut // 2, "down", bottleneck, bnWidth1)
        self.conv_normal = ConvBN(nIn2, nOut // 2, "normal", bottleneck, bnWidth2)

    def forward(self, x: list[Tensor]) -> Tensor:
        return torch.cat([x[1], self.conv_down(x[0]), self.conv_normal(x[1])], dim=1)


class ConvNormal(nn.Module):
    def __init__(self, nIn: int, nOut: int, bottleneck: bool, bnWidth: int):
        super().__init__()
        self.conv_normal = ConvBN(nIn, nOut, "normal", bottleneck, bnWidth)

    def forward(self, x: Tensor | list[Tensor]) -> Tensor:
        if not isinstance(x, list):
            x = [x]
        return torch.cat([x[0], self.conv_normal(x[0])], dim=1)


class MSDNFirstLayer(nn.Module):
    def __init__(self, nIn: int, nOut: int, args: Any):
        super().__init__()
        self.layers = nn.ModuleList()
        if args.data.startswith("cifar"):
            self.layers.append(ConvBasic(nIn, nOut * args.grFactor[0], kernel=3, stride=1))
        elif args.data == "ImageNet":
            self.layers.append(
                nn.Sequential(
                    nn.Conv2d(nIn, nOut * args.grFactor[0], 7, 2, 3),
                    nn.BatchNorm2d(nOut * args.grFactor[0]),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(3, 2, 1),
                )
            )
        nIn = nOut * args.grFactor[0]
        for i in range(1, args.nScales):
            self.layers.append(ConvBasic(nIn, nOut * args.grFactor[i], kernel=3, stride=2))
            nIn = nOut * args.grFactor[i]

    def forward(self, x: Tensor) -> list[Tensor]:
        res = []
        for layer in self.layers:
            x = layer(x)
            res.append(x)
        return res


class MSDNLayer(nn.Module):
    def __init__(self, nIn: int, nOut: int, args: Any, inScales: int, outScales: int):
        super().__init__()
        self.nIn = nIn
        self.nOut = nOut
        self.inScales = inScales
        self.outScales = outScales
        self.nScales = args.nScales
        self.discard = inScales - outScales
        self.offset = self.nScales - outScales
        self.layers = nn.ModuleList()
        gr, bn = args.grFactor, args.bnFactor
        if self.discard > 0:
            o = self.offset
            self.layers.append(
                ConvDownNormal(
                    nIn * gr[o - 1], nIn * gr[o], nOut * gr[o], args.bottleneck, bn[o - 1], bn[o]
                )
            )
        else:
            o = self.offset
            self.layers.append(ConvNormal(nIn * gr[o], nOut * gr[o], args.bottleneck, bn[o]))
        for i in range(self.offset + 1, self.nScales):
            self.layers.append(
                ConvDownNormal(
                    nIn * gr[i - 1], nIn * gr[i], nOut * gr[i], args.bottleneck, bn[i - 1], bn[i]
                )
            )

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        if self.discard > 0:
            inp = [[x[i - 1], x[i]] for i in range(1, self.outScales + 1)]
        else:
            inp = [[x[0]]] + [[x[i - 1], x[i]] for i in range(1, self.outScales)]
        return [self.layers[i](inp[i]) for i in range(self.outScales)]


class ParallelModule(nn.Module):
    def __init__(self, parallel_modules: list[nn.Module]):
        super().__init__()
        self.m = nn.ModuleList(parallel_modules)

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        return [self.m[i](x[i]) for i in range(len(x))]


class ClassifierModule(nn.Module):
    def __init__(self, m: nn.Module, channel: int, num_classes: int):
        super().__init__()
        self.m = m
        self.linear = nn.Linear(channel, num_classes)

    def forward(self, x: list[Tensor]) -> Tensor:
        res = self.m(x[-1])
        res = res.view(res.size(0), -1)
        return self.linear(res)


class MSDNet(nn.Module):
    def __init__(self, args: Any):
        super().__init__()
        self.blocks = nn.ModuleList()
        self.classifier = nn.ModuleList()
        self.nBlocks = args.nBlocks
        self.steps = [args.base]
        n_layers_all, n_layer_curr = args.base, 0
        for i in range(1, self.nBlocks):
            self.steps.append(args.step if args.stepmode == "even" else args.step * i + 1)
            n_layers_all += self.steps[-1]

        nIn = args.nChannels
        for i in range(self.nBlocks):
            m, nIn = self._build_block(nIn, args, self.steps[i], n_layers_all, n_layer_curr)
            self.blocks.append(m)
            n_layer_curr += self.steps[i]
            if args.data.startswith("cifar100"):
                head = self._build_classifier_cifar(nIn * args.grFactor[-1], 100)
            elif args.data.startswith("cifar10"):
                head = self._build_classifier_cifar(nIn * args.grFactor[-1], 10)
            elif args.data == "ImageNet":
                head = self._build_classifier_imagenet(nIn * args.grFactor[-1], 1000)
            else:
                raise NotImplementedError
            self.classifier.append(head)

        # As in the original: iterating a block yields its direct children and a head is not
        # iterable, so no conv, norm or linear layer is ever reached.
        for part in (*self.blocks, *self.classifier):
            if hasattr(part, "__iter__"):
                for child in part:
                    self._init_weights(child)
            else:
                self._init_weights(part)

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear):
            m.bias.data.zero_()

    def _build_block(
        self, nIn: int, args: Any, step: int, n_layer_all: int, n_layer_curr: int
    ) -> tuple[nn.Sequential, int]:
        layers: list[nn.Module] = [MSDNFirstLayer(3, nIn, args)] if n_layer_curr == 0 else []
        for _ in range(step):
            n_layer_curr += 1
            if args.prune == "min":
                inScales = min(args.nScales, n_layer_all - n_layer_curr + 2)
                outScales = min(args.nScales, n_layer_all - n_layer_curr + 1)
            elif args.prune == "max":
                interval = math.ceil(1.0 * n_layer_all / args.nScales)
                inScales = args.nScales - math.floor(1.0 * max(0, n_layer_curr - 2) / interval)
                outScales = args.nScales - math.floor(1.0 * (n_layer_curr - 1) / interval)
            else:
                raise ValueError(args.prune)
            layers.append(MSDNLayer(nIn, args.growthRate, args, inScales, outScales))
            nIn += args.growthRate
            at_max = args.prune == "max" and inScales > outScales and args.reduction > 0
            at_min = (
                args.prune == "min"
                and args.reduction > 0
                and (
                    n_layer_curr == math.floor(1.0 * n_layer_all / 3)
                    or n_layer_curr == math.floor(2.0 * n_layer_all / 3)
                )
            )
            if at_max or at_min:
                offset = args.nScales - outScales
                reduced = math.floor(1.0 * args.reduction * nIn)
                layers.append(self._build_transition(nIn, reduced, outScales, offset, args))
                nIn = reduced
        return nn.Sequential(*layers), nIn

    def _build_transition(
        self, nIn: int, nOut: int, outScales: int, offset: int, args: Any
    ) -> ParallelModule:
        net: list[nn.Module] = [
            ConvBasic(
                nIn * args.grFactor[offset + i],
                nOut * args.grFactor[offset + i],
                kernel=1,
                stride=1,
                padding=0,
            )
            for i in range(outScales)
        ]
        return ParallelModule(net)

    def _build_classifier_cifar(self, nIn: int, num_classes: int) -> ClassifierModule:
        inter1, inter2 = 128, 128
        conv = nn.Sequential(
            ConvBasic(nIn, inter1, kernel=3, stride=2, padding=1),
            ConvBasic(inter1, inter2, kernel=3, stride=2, padding=1),
            nn.AvgPool2d(2),
        )
        return ClassifierModule(conv, inter2, num_classes)

    def _build_classifier_imagenet(self, nIn: int, num_classes: int) -> ClassifierModule:
        conv = nn.Sequential(
            ConvBasic(nIn, nIn, kernel=3, stride=2, padding=1),
            ConvBasic(nIn, nIn, kernel=3, stride=2, padding=1),
            nn.AvgPool2d(2),
        )
        return ClassifierModule(conv, nIn, num_classes)

    def forward(self, x: Tensor) -> list[Tensor]:
        res = []
        for i in range(self.nBlocks):
            x = self.blocks[i](x)
            res.append(self.classifier[i](x))
        return res
