"""Real batched early exit with ONNX Runtime, for a directory written by ``adanet.export_onnx``.

This file needs only numpy and onnxruntime, and ``export_format.py`` beside it: both are
copied next to the ``.onnx`` files so a device without PyTorch (or adanet) can serve the
model::

    import numpy as np
    from early_exit_session import EarlyExitSession

    session = EarlyExitSession("exported")        # the directory holding manifest.json
    out = session.run(images)                     # float [N, C, H, W], already normalised
    out["logits"], out["exit_index"], out["cost"]

The network is one ONNX file per exit. Stage 0 takes the images, stage ``k`` the state stage
``k - 1`` returned; each returns its exit's logits and the state after it. After each exit the
policy of ``manifest.json`` (the form ``adanet.EarlyExitPolicy.to_dict`` writes) decides which
samples leave; the state is cut down to the samples that remain, so the next stage runs on
those only. Confidence measures, larger meaning more confident, as in adanet: ``max_prob``
(the largest softmax probability), ``entropy`` (``1 - H(p) / log(C)``), ``margin`` (top-1
minus top-2 probability) and ``patience`` (how many consecutive exits, ending at this one,
predicted the same class). An optional ``temperatures`` list divides exit ``k``'s logits by
``temperatures[k]`` first. A sample leaves at the first exit whose confidence is
``>= thresholds[k]``; the last exit takes everybody still there.

Before anything runs, the folder is checked by ``export_format.read_export`` (checksums, plain
file names, no symbolic links, the manifest field by field) and each stage's graph against the
manifest; see that file for what this protects against and what it does not.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

try:  # within the adanet package
    from .export_format import MEASURES, ExportError, check_stage, parse_policy, read_export
except ImportError:  # the copy beside an export, imported as a top-level module
    from export_format import (  # type: ignore[no-redef,import-not-found]
        MEASURES,
        ExportError,
        check_stage,
        parse_policy,
        read_export,
    )

__all__ = ["MEASURES", "EarlyExitSession", "ExportError", "confidence"]


# ----------------------------------------------------------------------------- running


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


def confidence(logits: np.ndarray, measure: str) -> np.ndarray:
    """Per-sample confidence of one exit's ``[N, C]`` logits (not for ``patience``), in
    float64; larger means more confident.

    Raises:
        ValueError: An unknown measure.
    """
    x = np.asarray(logits, dtype=np.float64)
    classes = x.shape[1]
    if measure == "max_prob":
        result: np.ndarray = _softmax(x).max(axis=1)
        return result
    if measure == "margin":
        probs = _softmax(x)
        if classes == 1:
            return probs[:, 0]
        top2 = np.partition(probs, classes - 2, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]
    if measure == "entropy":
        if classes == 1:
            return np.ones(x.shape[0])
        shifted = x - x.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        probs = np.exp(log_probs)
        # 0 * log(0) is 0: a -inf logit must not turn the sum into NaN.
        plogp = np.where(probs > 0, probs * np.where(probs > 0, log_probs, 0.0), 0.0)
        normalised: np.ndarray = 1.0 - (-plogp.sum(axis=1)) / math.log(classes)
        return normalised
    raise ValueError(f"unknown confidence measure {measure!r}; allowed: {', '.join(MEASURES)}")


class EarlyExitSession:
    """ONNX Runtime sessions for every stage of an exported early-exit network.

    Args:
        directory: The directory written by ``adanet.export_onnx``.
        policy: A policy mapping (``EarlyExitPolicy.to_dict`` form) replacing the manifest's.
        providers: ONNX Runtime execution providers; the CPU by default.
        threads: Intra-op threads of each session; ONNX Runtime's default when omitted.

    Raises:
        FileNotFoundError: No folder, or a file it lists is missing.
        ExportError: An altered, linked or foreign file, a malformed manifest (or one of a
            newer format), or a stage that does not match it.
        ValueError: No policy in the manifest and none given, or one that does not fit.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        policy: Mapping[str, Any] | None = None,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.directory = os.fspath(directory)
        self.manifest, stages = read_export(self.directory)
        self.num_exits = int(self.manifest["num_exits"])
        self.input_shape = tuple(int(v) for v in self.manifest["input"]["shape"][1:])
        chosen = policy if policy is not None else self.manifest.get("policy")
        if chosen is None:
            raise ValueError(
                "the manifest holds no policy; pass one, e.g. "
                "policy={'measure': 'max_prob', 'thresholds': [...]}"
            )
        self._policy = parse_policy(
            chosen, self.num_exits, self.manifest["num_classes"], self.input_shape[1:]
        )
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        self._sessions = []
        self._input_names: list[list[str]] = []
        for k, payload in enumerate(stages):
            session = ort.InferenceSession(payload, sess_options=options, providers=list(providers))
            # A stage may not read every state tensor; feed only what its graph takes.
            self._input_names.append(check_stage(session, k, self.manifest))
            self._sessions.append(session)
        self._outputs = [list(entry["outputs"]) for entry in self.manifest["exits"]]
        self._inputs = [list(entry["inputs"]) for entry in self.manifest["exits"]]
        self._costs = np.asarray(self.manifest["costs"]["macs"], dtype=np.float64)

    @property
    def policy(self) -> dict[str, Any]:
        """The policy in use, as a mapping."""
        data = {"measure": self._policy["measure"], "thresholds": list(self._policy["thresholds"])}
        if self._policy["temperatures"] is not None:
            data["temperatures"] = list(self._policy["temperatures"])
        return data

    def _stage(self, k: int, values: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(self._inputs[k], values, strict=True))
        wanted = set(self._input_names[k])
        outputs: list[np.ndarray] = self._sessions[k].run(
            self._outputs[k], {name: value for name, value in feeds.items() if name in wanted}
        )
        return outputs

    def _images(self, images: Any) -> np.ndarray:
        x = np.asarray(images)
        if x.dtype.kind != "f":
            # uint8 pixels are not normalised images, and a cast would silently change which
            # exit each sample takes; integers, bools and complex numbers are refused alike.
            raise TypeError(
                f"expected floating-point images normalised as in training, got dtype {x.dtype}"
            )
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape or x.shape[0] == 0:
            raise ValueError(
                f"expected a non-empty batch [N, {', '.join(map(str, self.input_shape))}]"
                f", got shape {tuple(x.shape)}"
            )
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Classify ``images`` with real early exit.

        Args:
            images: Floating-point ``[N, C, H, W]`` (float16, float32 or float64; run in
                float32), already normalised as in training.

        Returns:
            ``logits`` (float32 ``[N, classes]``, from the exit each sample left at),
            ``exit_index`` (int64 ``[N]``) and ``cost`` (float64 ``[N]``, the cumulative MACs
            each sample paid), in input order.

        Raises:
            TypeError: Images that are not floating point (uint8, integers, bool, complex).
            ValueError: Not a non-empty batch of the exported image shape.
        """
        x = self._images(images)
        n = x.shape[0]
        policy = self._policy
        temperatures, thresholds = policy["temperatures"], policy["thresholds"]
        remaining = np.arange(n)
        exit_index = np.full(n, self.num_exits - 1, dtype=np.int64)
        logits_out = np.empty((n, int(self.manifest["num_classes"])), dtype=np.float32)
        values: list[np.ndarray] = [x]
        previous = np.full(n, -1, dtype=np.int64)
        streak = np.zeros(n, dtype=np.int64)
        for k in range(self.num_exits):
            logits, *state = self._stage(k, values)
            if k == self.num_exits - 1:
                logits_out[remaining] = logits
                break
            scaled = logits if temperatures is None else logits.astype(np.float64) / temperatures[k]
            if policy["measure"] == "patience":
                prediction = scaled.argmax(axis=1)
                streak = np.where(prediction == previous, streak + 1, 1)
                previous = prediction
                score = streak.astype(np.float64)
            else:
                score = confidence(scaled, policy["measure"])
            leaving = score >= thresholds[k]
            gone = np.flatnonzero(leaving)
            logits_out[remaining[gone]] = logits[gone]
            exit_index[remaining[gone]] = k
            kept = np.flatnonzero(~leaving)
            if kept.size == 0:
                break
            if kept.size < leaving.size:
                state = [np.ascontiguousarray(s[kept]) for s in state]
                remaining, previous, streak = remaining[kept], previous[kept], streak[kept]
            values = state
        return {"logits": logits_out, "exit_index": exit_index, "cost": self._costs[exit_index]}
