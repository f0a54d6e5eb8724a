"""Independent transcription of the original RANet, used only as a test oracle.

This re-types the architecture of ``models/RANet.py`` and the cost counter of
``op_counter.py`` from the original RANet-pytorch repository (Yang et al., "Resolution
Adaptive Networks for Efficient Inference", CVPR 2020). Module names and nesting are kept so
that ``state_dict()`` keys are exactly the original's (``FirstLayer``, ``scale_flows``,
``classifier``, ``conv_normal``, ``conv_up``, ``conv_last``, ``trans``, ``net``, ``m``,
``linear``), and so are the original's quirks (the ``[-(scale_list[ii] - 1):]`` downsampling
rule, the ``AvgPool2d(2)`` heads, the crash of fusion blocks at ``step == 1``). Only the
prints and the ``pdb`` import are left out. It is not part of adanet and must not be "fixed":
it is the reference that adanet is compared against.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RANet", "measure_model"]


class ConvBasic(nn.Module):
    def __init__(self, nIn: int, nOut: int, kernel: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(nIn, nOut, kernel_size=kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(nOut),
            nn.ReLU(True),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class ConvBN(nn.Module):
    def __init__(self, nIn: int, nOut: int, type: str, bnAfter: bool, bnWidth: int):
        super().__init__()
        layer: list[nn.Module] = []
        nInner = nIn
        if bnAfter is True:
            nInner = min(nInner, bnWidth * nOut)
            layer.append(nn.Conv2d(nIn, nInner, kernel_size=1, stride=1, padding=0, bias=False))
            layer.append(nn.BatchNorm2d(nInner))
            layer.append(nn.ReLU(True))
            if type == "normal":
                layer.append(
                    nn.Conv2d(nInner, nOut, kernel_size=3, stride=1, padding=1, bias=False)
                )
            elif type == "down":
                layer.append(
                    nn.Conv2d(nInner, nOut, kernel_size=3, stride=2, padding=1, bias=False)
                )
            else:
                raise ValueError
            layer.append(nn.BatchNorm2d(nOut))
            layer.append(nn.ReLU(True))
        else:
            nInner = min(nInner, bnWidth * nOut)
            layer.append(nn.BatchNorm2d(nIn))
            layer.append(nn.ReLU(True))
            layer.append(nn.Conv2d(nIn, nInner, kernel_size=1, stride=1, padding=0, bias=False))
            layer.append(nn.BatchNorm2d(nInner))
            layer.append(nn.ReLU(True))
            if type == "normal":
                layer.append(
                    nn.Conv2d(nInner, nOut, kernel_size=3, stride=1, padding=1, bias=False)
                )
            elif type == "down":
                layer.append(
                    nn.Conv2d(nInner, nOut, kernel_size=3, stride=2, padding=1, bias=False)
                )
            else:
                raise ValueError
        self.net = nn.Sequential(*layer)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class ConvUpNormal(nn.Module):
    def __init__(
        self,
        nIn1: int,
        nIn2: int,
        nOut: int,
        bottleneck: bool,
        bnWidth1: int,
        bnWidth2: int,
        compress_factor: float,
        down_sample: bool,
    ):
        super().__init__()
        self.conv_up = ConvBN(
            nIn2, math.floor(nOut * compress_factor), "normal", bottleneck, bnWidth2
        )
        if down_sample:
            self.conv_normal = ConvBN(
                nIn1, nOut - math.floor(nOut * compress_factor), "down", bottleneck, bnWidth1
            )
        else:
            self.conv_normal = ConvBN(
                nIn1, nOut - math.floor(nOut * compress_factor), "normal", bottleneck, bnWidth1
            )

    def forward(self, x: list[Tensor]) -> Tensor:
        res = self.conv_normal(x[1])
        _, _, h, w = res.size()
        out = [
            F.interpolate(x[1], size=(h, w), mode="bilinear", align_corners=True),
            F.interpolate(self.conv_up(x[0]), size=(h, w), mode="bilinear", align_corners=True),
            res,
        ]
        return torch.cat(out, dim=1)


class ConvNormal(nn.Module):
    def __init__(self, nIn: int, nOut: int, bottleneck: bool, bnWidth: int):
        super().__init__()
        self.conv_normal = ConvBN(nIn, nOut, "normal", bottleneck, bnWidth)

    def forward(self, x: Tensor | list[Tensor]) -> Tensor:
        if not isinstance(x, list):
            x = [x]
        res = [x[0], self.conv_normal(x[0])]
        return torch.cat(res, dim=1)


class _BlockNormal(nn.Module):
    def __init__(
        self,
        num_layers: int,
        nIn: int,
        growth_rate: int,
        reduction_rate: float,
        trans: bool,
        bnFactor: int,
    ):
        super().__init__()
        self.layers = nn.ModuleList()
        self.num_layers = num_layers
        for i in range(num_layers):
            self.layers.append(ConvNormal(nIn + i * growth_rate, growth_rate, True, bnFactor))
        nOut = nIn + num_layers * growth_rate
        self.trans_flag = trans
        if trans:
            self.trans = ConvBasic(
                nOut, math.floor(1.0 * reduction_rate * nOut), kernel=1, stride=1, padding=0
            )

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        output = [x]
        for i in range(self.num_layers):
            x = self.layers[i](x)
            output.append(x)
        x = output[-1]
        if self.trans_flag:
            x = self.trans(x)
        return x, output

    def _blockType(self) -> str:
        return "norm"


class _BlockUpNormal(nn.Module):
    def __init__(
        self,
        num_layers: int,
        nIn: int,
        nIn_lowFtrs: list[int],
        growth_rate: int,
        reduction_rate: float,
        trans: bool,
        down: bool,
        compress_factor: float,
        bnFactor1: int,
        bnFactor2: int,
    ):
        super().__init__()
        self.layers = nn.ModuleList()
        self.num_layers = num_layers
        for i in range(num_layers - 1):
            self.layers.append(
                ConvUpNormal(
                    nIn + i * growth_rate,
                    nIn_lowFtrs[i],
                    growth_rate,
                    True,
                    bnFactor1,
                    bnFactor2,
                    compress_factor,
                    False,
                )
            )
        # As in the original, `i` is unbound here when num_layers == 1 (the step=1 crash).
        self.layers.append(
            ConvUpNormal(
                nIn + (i + 1) * growth_rate,
                nIn_lowFtrs[i + 1],
                growth_rate,
                True,
                bnFactor1,
                bnFactor2,
                compress_factor,
                down,
            )
        )
        nOut = nIn + num_layers * growth_rate
        self.conv_last = ConvBasic(
            nIn_lowFtrs[num_layers],
            math.floor(nOut * compress_factor),
            kernel=1,
            stride=1,
            padding=0,
        )
        nOut = nOut + math.floor(nOut * compress_factor)
        self.trans_flag = trans
        if trans:
            self.trans = ConvBasic(
                nOut, math.floor(1.0 * reduction_rate * nOut), kernel=1, stride=1, padding=0
            )

    def forward(self, x: Tensor, low_feat: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        output = [x]
        for i in range(self.num_layers):
            inp = [low_feat[i]]
            inp.append(x)
            x = self.layers[i](inp)
            output.append(x)
        x = output[-1]
        _, _, h, w = x.size()
        parts = [x]
        parts.append(
            F.interpolate(
                self.conv_last(low_feat[self.num_layers]),
                size=(h, w),
                mode="bilinear",
                align_corners=True,
            )
        )
        x = torch.cat(parts, dim=1)
        if self.trans_flag:
            x = self.trans(x)
        return x, output

    def _blockType(self) -> str:
        return "up"


class RAFirstLayer(nn.Module):
    def __init__(self, nIn: int, nOut: int, args: Any):
        super().__init__()
        _grFactor = args.grFactor[::-1]
        _scale_list = args.scale_list[::-1]
        self.layers = nn.ModuleList()
        if args.data.startswith("cifar"):
            self.layers.append(ConvBasic(nIn, nOut * _grFactor[0], kernel=3, stride=1, padding=1))
        elif args.data == "ImageNet":
            conv = nn.Sequential(
                nn.Conv2d(nIn, nOut * _grFactor[0], 7, 2, 3),
                nn.BatchNorm2d(nOut * _grFactor[0]),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
            self.layers.append(conv)

        nIn = nOut * _grFactor[0]

        s = _scale_list[0]
        for i in range(1, args.nScales):
            if s == _scale_list[i]:
                self.layers.append(
                    ConvBasic(nIn, nOut * _grFactor[i], kernel=3, stride=1, padding=1)
                )
            else:
                self.layers.append(
                    ConvBasic(nIn, nOut * _grFactor[i], kernel=3, stride=2, padding=1)
                )
                s = _scale_list[i]
            nIn = nOut * _grFactor[i]

    def forward(self, x: Tensor) -> list[Tensor]:
        res = []
        for i in range(len(self.layers)):
            x = self.layers[i](x)
            res.append(x)
        return res[::-1]


class ClassifierModule(nn.Module):
    def __init__(self, m: nn.Module, channel: int, num_classes: int):
        super().__init__()
        self.m = m
        self.linear = nn.Linear(channel, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        res = self.m(x)
        res = res.view(res.size(0), -1)
        out: Tensor = self.linear(res)
        return out


class RANet(nn.Module):
    def __init__(self, args: Any):
        super().__init__()
        self.scale_flows = nn.ModuleList()
        self.classifier = nn.ModuleList()

        self.compress_factor = args.compress_factor
        self.bnFactor = copy.copy(args.bnFactor)

        scale_list = args.scale_list
        self.nScales = len(args.scale_list)

        # The number of blocks in each scale flow
        self.nBlocks = [0]
        for i in range(self.nScales):
            self.nBlocks.append(args.block_step * i + args.nBlocks)

        # The number of layers in each block
        self.steps = args.step

        self.FirstLayer = RAFirstLayer(3, args.nChannels, args)

        steps = [args.step]
        nIn_lowFtrs: list[list[int]] = []  # unused by the first scale (always unbound there)
        for ii in range(self.nScales):
            scale_flow = nn.ModuleList()

            n_block_curr = 1
            nIn = args.nChannels * args.grFactor[ii]
            _nIn_lowFtrs: list[list[int]] = []

            for i in range(self.nBlocks[ii + 1]):
                growth_rate = args.growthRate * args.grFactor[ii]

                # If transition
                trans = self._trans_flag(
                    n_block_curr, n_block_all=self.nBlocks[ii + 1], inScale=scale_list[ii]
                )

                if n_block_curr > self.nBlocks[ii]:
                    m, nOuts = self._build_norm_block(
                        nIn,
                        steps[n_block_curr - 1],
                        growth_rate,
                        args.reduction,
                        trans,
                        bnFactor=self.bnFactor[ii],
                    )
                    if args.stepmode == "even":
                        steps.append(args.step)
                    elif args.stepmode == "lg":
                        steps.append(steps[-1] + args.step)
                    else:
                        raise NotImplementedError
                else:
                    if n_block_curr in self.nBlocks[: ii + 1][-(scale_list[ii] - 1) :]:
                        m, nOuts = self._build_upNorm_block(
                            nIn,
                            nIn_lowFtrs[i],
                            steps[n_block_curr - 1],
                            growth_rate,
                            args.reduction,
                            trans,
                            down=True,
                            bnFactor1=self.bnFactor[ii],
                            bnFactor2=self.bnFactor[ii - 1],
                        )
                    else:
                        m, nOuts = self._build_upNorm_block(
                            nIn,
                            nIn_lowFtrs[i],
                            steps[n_block_curr - 1],
                            growth_rate,
                            args.reduction,
                            trans,
                            down=False,
                            bnFactor1=self.bnFactor[ii],
                            bnFactor2=self.bnFactor[ii - 1],
                        )

                nIn = nOuts[-1]
                scale_flow.append(m)

                if n_block_curr > self.nBlocks[ii]:
                    if args.data.startswith("cifar100"):
                        self.classifier.append(self._build_classifier_cifar(nIn, 100))
                    elif args.data.startswith("cifar10"):
                        self.classifier.append(self._build_classifier_cifar(nIn, 10))
                    elif args.data == "ImageNet":
                        self.classifier.append(self._build_classifier_imagenet(nIn, 1000))
                    else:
                        raise NotImplementedError

                _nIn_lowFtrs.append(nOuts[:-1])
                n_block_curr += 1

            nIn_lowFtrs = _nIn_lowFtrs
            self.scale_flows.append(scale_flow)

        args.num_exits = len(self.classifier)

        for m in self.scale_flows:
            for _m in m.modules():
                self._init_weights(_m)

        for m in self.classifier:
            for _m in m.modules():
                self._init_weights(_m)

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear):
            m.bias.data.zero_()

    def _build_norm_block(
        self,
        nIn: int,
        step: int,
        growth_rate: int,
        reduction_rate: float,
        trans: bool,
        bnFactor: int = 2,
    ) -> tuple[nn.Module, list[int]]:
        block = _BlockNormal(step, nIn, growth_rate, reduction_rate, trans, bnFactor=bnFactor)
        nOuts = []
        for i in range(step + 1):
            nOut = nIn + i * growth_rate
            nOuts.append(nOut)
        if trans:
            nOut = math.floor(1.0 * reduction_rate * nOut)
        nOuts.append(nOut)
        return block, nOuts

    def _build_upNorm_block(
        self,
        nIn: int,
        nIn_lowFtr: list[int],
        step: int,
        growth_rate: int,
        reduction_rate: float,
        trans: bool,
        down: bool,
        bnFactor1: int = 1,
        bnFactor2: int = 2,
    ) -> tuple[nn.Module, list[int]]:
        compress_factor = self.compress_factor
        block = _BlockUpNormal(
            step,
            nIn,
            nIn_lowFtr,
            growth_rate,
            reduction_rate,
            trans,
            down,
            compress_factor,
            bnFactor1=bnFactor1,
            bnFactor2=bnFactor2,
        )
        nOuts = []
        for i in range(step + 1):
            nOut = nIn + i * growth_rate
            nOuts.append(nOut)
        nOut = nOut + math.floor(nOut * compress_factor)
        if trans:
            nOut = math.floor(1.0 * reduction_rate * nOut)
        nOuts.append(nOut)
        return block, nOuts

    def _trans_flag(self, n_block_curr: int, n_block_all: int, inScale: int) -> bool:
        flag = False
        for i in range(inScale - 1):
            if n_block_curr == math.floor((i + 1) * n_block_all / inScale):
                flag = True
        return flag

    def forward(self, x: Tensor) -> list[Tensor]:
        inp = self.FirstLayer(x)
        res: list[Tensor] = []
        low_ftrs: list[list[Tensor]] = []
        classifier_idx = 0
        scale_flows: Any = self.scale_flows
        for ii in range(self.nScales):
            _x = inp[ii]
            _low_ftrs = []
            n_block_curr = 0
            for i in range(self.nBlocks[ii + 1]):
                if scale_flows[ii][i]._blockType() == "norm":
                    _x, _low_ftr = scale_flows[ii][i](_x)
                    _low_ftrs.append(_low_ftr)
                else:
                    _x, _low_ftr = scale_flows[ii][i](_x, low_ftrs[i])
                    _low_ftrs.append(_low_ftr)
                n_block_curr += 1  # noqa: SIM113 - the original's counter

                if n_block_curr > self.nBlocks[ii]:
                    res.append(self.classifier[classifier_idx](_x))
                    classifier_idx += 1

            low_ftrs = _low_ftrs
        return res

    def _build_classifier_cifar(self, nIn: int, num_classes: int) -> ClassifierModule:
        interChannels1, interChannels2 = 128, 128
        conv = nn.Sequential(
            ConvBasic(nIn, interChannels1, kernel=3, stride=2, padding=1),
            ConvBasic(interChannels1, interChannels2, kernel=3, stride=2, padding=1),
            nn.AvgPool2d(2),
        )
        return ClassifierModule(conv, interChannels2, num_classes)

    def _build_classifier_imagenet(self, nIn: int, num_classes: int) -> ClassifierModule:
        conv = nn.Sequential(
            ConvBasic(nIn, nIn, kernel=3, stride=2, padding=1),
            ConvBasic(nIn, nIn, kernel=3, stride=2, padding=1),
            nn.AvgPool2d(2),
        )
        return ClassifierModule(conv, nIn, num_classes)


# ------------------------------------------------------------------------- op_counter.py

_NOTHING = {
    "BatchNorm2d",
    "Dropout2d",
    "DropChannel",
    "Dropout",
    "MSDNFirstLayer",
    "ConvBasic",
    "ConvBN",
    "ParallelModule",
    "MSDNet",
    "Sequential",
    "MSDNLayer",
    "ConvDownNormal",
    "ConvNormal",
    "ClassifierModule",
}


def _layer_param(layer: nn.Module) -> int:
    return sum(math.prod(p.size()) for p in layer.parameters())


def measure_model(model: nn.Module, H: int, W: int) -> tuple[list[float], list[int]]:
    """The original ``measure_model``: cumulative (ops, params) when each Linear runs.

    Same counting rules as the original: leaves only; Conv2d
    ``Cin*Cout*kh*kw*Hout*Wout/groups`` with output size from its own formula; ReLU its
    input's element count; Avg/MaxPool2d ``N*C*out*out*k*k`` from the input's height;
    AdaptiveAvgPool2d its input's element count; Linear ``N*(in*out + out)``; nothing for
    the listed container/normalisation types; any other leaf type is an error.
    """
    ops = [0.0]
    n_params = [0]
    cls_ops: list[float] = []
    cls_params: list[int] = []

    def measure_layer(layer: nn.Module, x: Tensor) -> None:
        delta_ops: float = 0
        type_name = type(layer).__name__
        conv: Any = layer
        if type_name == "Conv2d":
            out_h = int(
                (x.size()[2] + 2 * conv.padding[0] - conv.kernel_size[0]) / conv.stride[0] + 1
            )
            out_w = int(
                (x.size()[3] + 2 * conv.padding[1] - conv.kernel_size[1]) / conv.stride[1] + 1
            )
            delta_ops = (
                conv.in_channels
                * conv.out_channels
                * conv.kernel_size[0]
                * conv.kernel_size[1]
                * out_h
                * out_w
                / conv.groups
            )
        elif type_name == "ReLU":
            delta_ops = x.numel()
        elif type_name in ("AvgPool2d", "MaxPool2d"):
            k: Any = layer.kernel_size
            pad: Any = layer.padding
            stride: Any = layer.stride
            in_w = x.size()[2]
            out = int((in_w + 2 * pad - k) / stride + 1)
            delta_ops = x.size()[0] * x.size()[1] * out * out * k * k
        elif type_name == "AdaptiveAvgPool2d":
            delta_ops = x.size()[0] * x.size()[1] * x.size()[2] * x.size()[3]
        elif type_name == "Linear":
            assert isinstance(layer, nn.Linear)
            delta_ops = x.size()[0] * (layer.weight.numel() + layer.bias.numel())
        elif type_name not in _NOTHING:
            raise TypeError(f"unknown layer type: {type_name}")
        ops[0] += delta_ops
        n_params[0] += _layer_param(layer)
        if type_name == "Linear":
            cls_ops.append(ops[0])
            cls_params.append(n_params[0])

    def hook(layer: nn.Module, inputs: tuple[Any, ...]) -> None:
        measure_layer(layer, inputs[0])

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [leaf.register_forward_pre_hook(hook) for leaf in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, H, W))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return cls_ops, cls_params
