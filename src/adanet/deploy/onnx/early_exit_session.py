"""Real batched early exit with ONNX Runtime, for a directory written by ``adanet.export_onnx``.

This file needs only numpy and onnxruntime: it is copied next to the ``.onnx`` files so a
device without PyTorch (or adanet) can serve the model::

    import numpy as np
    from early_exit_session import EarlyExitSession

    session = EarlyExitSession("exported")        # the directory holding manifest.json
    out = session.run(images)                     # float32 [N, C, H, W], already normalised
    out["logits"], out["exit_index"], out["cost"]

The network is one ONNX file per exit. Stage 0 takes the images, stage ``k`` the state stage
``k - 1`` returned; each returns its exit's logits and the state after it. After each exit the
policy of ``manifest.json`` (the form ``adanet.EarlyExitPolicy.to_dict`` writes) decides which
samples leave; the state is cut down to the samples that remain, so the next stage runs on
those only. Confidence measures, larger meaning more confident, as in adanet:

* ``max_prob``: the largest softmax probability;
* ``entropy``: ``1 - H(p) / log(C)``;
* ``margin``: top-1 minus top-2 softmax probability;
* ``patience``: how many consecutive exits, ending at this one, predicted the same class.

An optional ``temperatures`` list in the policy divides exit ``k``'s logits by
``temperatures[k]`` before the measure. A sample leaves at the first exit whose confidence is
``>= thresholds[k]``; the last exit takes everybody still there.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

__all__ = ["MEASURES", "EarlyExitSession", "confidence"]

MEASURES = ("max_prob", "entropy", "margin", "patience")
MANIFEST = "manifest.json"
SUPPORTED_FORMAT_VERSION = 1


def _threshold(value: Any) -> float:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "+inf", "infinity", "+infinity"):
            return math.inf
        if text in ("-inf", "-infinity"):
            return -math.inf
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"cannot read threshold {value!r}; expected a number, 'inf' or '-inf'")
    return float(value)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


def confidence(logits: np.ndarray, measure: str) -> np.ndarray:
    """Per-sample confidence of one exit's ``[N, C]`` logits (not for ``patience``).

    Computed in float64; larger means more confident.

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


class _Policy:
    """The manifest's policy, decoded and checked."""

    def __init__(self, data: Mapping[str, Any], num_exits: int) -> None:
        if not isinstance(data, Mapping) or "thresholds" not in data:
            raise ValueError(f"a policy is a mapping with 'thresholds', got {data!r}")
        self.measure = str(data.get("measure", "max_prob"))
        if self.measure not in MEASURES:
            raise ValueError(
                f"unknown confidence measure {self.measure!r}; allowed: {', '.join(MEASURES)}"
            )
        self.thresholds = [_threshold(t) for t in data["thresholds"]]
        if len(self.thresholds) != num_exits:
            raise ValueError(
                f"the policy has {len(self.thresholds)} thresholds but the model has "
                f"{num_exits} exits"
            )
        raw = data.get("temperatures")
        self.temperatures: list[float] | None = None
        if raw is not None:
            self.temperatures = [float(t) for t in raw]
            if len(self.temperatures) != num_exits or not all(
                t > 0 and math.isfinite(t) for t in self.temperatures
            ):
                raise ValueError(
                    f"temperatures must be {num_exits} positive numbers, got {list(raw)!r}"
                )


class EarlyExitSession:
    """ONNX Runtime sessions for every stage of an exported early-exit network.

    Args:
        directory: The directory written by ``adanet.export_onnx``.
        policy: A policy mapping (``EarlyExitPolicy.to_dict`` form) replacing the manifest's.
        providers: ONNX Runtime execution providers; the CPU by default.
        threads: Intra-op threads of each session; ONNX Runtime's default when omitted.

    Raises:
        FileNotFoundError: No manifest or stage file.
        ValueError: A manifest of a newer format, or without a policy when none is given.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        policy: Mapping[str, Any] | None = None,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
    ) -> None:
        self.directory = os.fspath(directory)
        path = os.path.join(self.directory, MANIFEST)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {MANIFEST} in {self.directory!r}")
        with open(path, encoding="utf-8") as stream:
            self.manifest: dict[str, Any] = json.load(stream)
        version = self.manifest.get("format_version")
        if not isinstance(version, int) or version > SUPPORTED_FORMAT_VERSION:
            raise ValueError(
                f"{path} has format version {version!r}; this session reads up to "
                f"{SUPPORTED_FORMAT_VERSION}: use the early_exit_session.py exported with it"
            )
        exits = self.manifest["exits"]
        self.num_exits = len(exits)
        chosen = policy if policy is not None else self.manifest.get("policy")
        if chosen is None:
            raise ValueError(
                "the manifest holds no policy; pass one, e.g. "
                "policy={'measure': 'max_prob', 'thresholds': [...]}"
            )
        self._policy = _Policy(chosen, self.num_exits)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        self._sessions = []
        self._input_names: list[list[str]] = []
        for entry in exits:
            file = os.path.join(self.directory, entry["file"])
            if not os.path.isfile(file):
                raise FileNotFoundError(f"stage file {file!r} is missing")
            session = ort.InferenceSession(file, sess_options=options, providers=list(providers))
            self._sessions.append(session)
            # A stage may not read every state tensor; feed only what its graph takes.
            self._input_names.append([i.name for i in session.get_inputs()])
        self._outputs = [list(entry["outputs"]) for entry in exits]
        self._inputs = [list(entry["inputs"]) for entry in exits]
        self._costs = np.asarray(self.manifest["costs"]["macs"], dtype=np.float64)
        self.input_shape = tuple(int(v) for v in self.manifest["input"]["shape"][1:])

    @property
    def policy(self) -> dict[str, Any]:
        """The policy in use, as a mapping."""
        data: dict[str, Any] = {
            "measure": self._policy.measure,
            "thresholds": list(self._policy.thresholds),
        }
        if self._policy.temperatures is not None:
            data["temperatures"] = list(self._policy.temperatures)
        return data

    def _stage(self, k: int, values: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(self._inputs[k], values, strict=True))
        wanted = set(self._input_names[k])
        outputs: list[np.ndarray] = self._sessions[k].run(
            self._outputs[k], {name: value for name, value in feeds.items() if name in wanted}
        )
        return outputs

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Classify ``images`` with real early exit.

        Args:
            images: float32 ``[N, C, H, W]``, already normalised as in training.

        Returns:
            ``logits`` (float32 ``[N, classes]``, from the exit each sample left at),
            ``exit_index`` (int64 ``[N]``) and ``cost`` (float64 ``[N]``, the cumulative MACs
            each sample paid), in input order.

        Raises:
            ValueError: Not a non-empty batch of the exported image shape.
        """
        x = np.asarray(images)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape or x.shape[0] == 0:
            raise ValueError(
                f"expected a non-empty float32 batch [N, {', '.join(map(str, self.input_shape))}]"
                f", got shape {tuple(x.shape)}"
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        policy = self._policy
        remaining = np.arange(n)
        exit_index = np.full(n, self.num_exits - 1, dtype=np.int64)
        logits_out: np.ndarray | None = None
        values: list[np.ndarray] = [x]
        previous = np.full(n, -1, dtype=np.int64)
        streak = np.zeros(n, dtype=np.int64)
        for k in range(self.num_exits):
            logits, *state = self._stage(k, values)
            if logits_out is None:
                logits_out = np.empty((n, logits.shape[1]), dtype=logits.dtype)
            if k == self.num_exits - 1:
                logits_out[remaining] = logits
                break
            scaled = logits
            if policy.temperatures is not None:
                scaled = logits.astype(np.float64) / policy.temperatures[k]
            if policy.measure == "patience":
                prediction = scaled.argmax(axis=1)
                streak = np.where(prediction == previous, streak + 1, 1)
                previous = prediction
                score = streak.astype(np.float64)
            else:
                score = confidence(scaled, policy.measure)
            leaving = score >= policy.thresholds[k]
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
        assert logits_out is not None
        return {"logits": logits_out, "exit_index": exit_index, "cost": self._costs[exit_index]}
