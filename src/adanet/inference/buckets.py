"""Sub-batch sizes for shape-stable early exit.

After each exit, :func:`adanet.early_exit` carries on with the samples that stay. Their number
differs from batch to batch, and every new number is a new input shape for every later
layer. Kernel libraries build a kernel per shape: oneDNN (PyTorch's CPU convolutions) creates
and caches a primitive per convolution and shape, ``cudnn.benchmark`` tunes per shape, and
CUDA graphs and compiled graphs need static shapes. On a stream of distinct batches the
sub-batch sizes run through every value, a kernel cache of bounded size keeps being refilled,
and early exit can take longer than the whole network.

A :class:`SizeBuckets` rounds the number of staying samples up to one of a few sizes; the
extra rows are padding, which :func:`adanet.early_exit` keeps out of the logits, the exit
indices, the costs and the policy. Padding costs computation (at most the rounding's
overshoot per later stage) and saves kernel creation; ``docs/benchmarks.md`` has measured
numbers for each scheme.

Schemes (:meth:`SizeBuckets.parse` reads their names):

* ``"exact"``: no padding; every staying count is its own shape.
* ``"pow2"``: the next power of two (1, 2, 4, 8, …): at most log2(N) + 1 shapes, at most
  twice the rows needed.
* ``"half-octave"``: powers of two and their midpoints (1, 2, 3, 4, 6, 8, 12, 16, 24, …):
  about 2 log2(N) shapes, at most 1.5 times the rows needed.
* an ``int`` ``m``: the next multiple of ``m``: N / m shapes; at most ``m - 1`` extra rows.
* a sequence of sizes: the smallest listed size that fits; a count above every listed size
  runs unpadded.
* ``"auto"`` (:data:`DEFAULT_BUCKETS`): multiples of 8 up to 64, then half octaves (96, 128,
  192, 256, …, 4096): 8 shapes for a batch of 64, 12 for 256. Chosen by measurement
  (``docs/benchmarks.md``): on the demo model at batch 64, half octaves all the way down
  (12 sizes below 64) made the plain model create 2,066 oneDNN primitives over 16 batches of
  the report's timing, the default cache holding 1,024; multiples of 8 made 67 and ran fastest.

A size is never larger than the batch the network is already running on: padding never
makes a stage run on more rows than it would without early exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias, cast

from adanet._validation import is_int, require_int

__all__ = ["DEFAULT_BUCKETS", "BucketSpec", "SizeBuckets"]

_NAMES = ("exact", "pow2", "half-octave")


@dataclass(frozen=True)
class SizeBuckets:
    """How staying samples are grouped into a bounded set of sub-batch sizes.

    Build one with :meth:`parse` (or the class methods); ``early_exit(..., buckets=...)``
    accepts the same specifications directly.

    Attributes:
        scheme: ``"exact"``, ``"pow2"``, ``"half-octave"``, ``"multiple"`` or ``"sizes"``.
        step: The multiple, for ``"multiple"``.
        sizes: The allowed sizes in increasing order, for ``"sizes"``.
    """

    scheme: str
    step: int = 1
    sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        schemes = (*_NAMES, "multiple", "sizes")
        if self.scheme not in schemes:
            raise ValueError(f"scheme must be one of {schemes}, got {self.scheme!r}")

    @classmethod
    def exact(cls) -> SizeBuckets:
        """No padding."""
        return cls("exact")

    @classmethod
    def powers_of_two(cls) -> SizeBuckets:
        """The next power of two."""
        return cls("pow2")

    @classmethod
    def half_octaves(cls) -> SizeBuckets:
        """Powers of two and their midpoints: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, …"""
        return cls("half-octave")

    @classmethod
    def multiples(cls, step: int) -> SizeBuckets:
        """The next multiple of ``step``.

        Raises:
            TypeError, ValueError: ``step`` is not an int >= 1.
        """
        require_int("the bucket multiple", step, 1)
        return cls("multiple", step=step)

    @classmethod
    def listed(cls, sizes: Sequence[int]) -> SizeBuckets:
        """The smallest of ``sizes`` that fits (unpadded above the largest).

        Raises:
            TypeError, ValueError: Not a non-empty sequence of ints >= 1.
        """
        values = tuple(sizes)
        if not values or not all(is_int(v) for v in values):
            raise TypeError(f"bucket sizes must be a non-empty sequence of ints, got {sizes!r}")
        if min(values) < 1:
            raise ValueError(f"bucket sizes must be >= 1, got {sizes!r}")
        return cls("sizes", sizes=tuple(sorted(set(values))))

    @classmethod
    def parse(cls, spec: BucketSpec) -> SizeBuckets:
        """Read a bucket specification.

        Args:
            spec: A :class:`SizeBuckets`; ``None``, ``False`` or ``"exact"`` (no padding);
                ``"pow2"``; ``"half-octave"``; ``"auto"`` (:data:`DEFAULT_BUCKETS`); an
                ``int`` multiple; or a sequence of sizes.

        Raises:
            TypeError, ValueError: Anything else, naming what is allowed.
        """
        if isinstance(spec, SizeBuckets):
            return spec
        if spec is None or spec is False:
            return cls.exact()
        if isinstance(spec, str):
            if spec == "auto":
                return DEFAULT_BUCKETS
            if spec not in _NAMES:
                allowed = ", ".join(repr(name) for name in ("auto", *_NAMES))
                raise ValueError(
                    f"buckets must be one of {allowed}, an int multiple, a sequence of sizes "
                    f"or a SizeBuckets, got {spec!r}"
                )
            return cls(spec)
        if is_int(spec):
            return cls.multiples(spec)
        if isinstance(spec, Sequence):
            return cls.listed(cast(Sequence[int], spec))
        raise TypeError(
            "buckets must be 'auto', 'exact', 'pow2', 'half-octave', an int multiple, a "
            f"sequence of sizes, a SizeBuckets or None, got {spec!r}"
        )

    def size_for(self, count: int, limit: int) -> int:
        """The sub-batch size for ``count`` staying samples, at most ``limit`` (and at least
        ``count``, which must not exceed ``limit``)."""
        if count >= limit:
            return limit
        return max(count, min(limit, self._round_up(count)))

    def _round_up(self, count: int) -> int:
        if self.scheme == "exact":
            return count
        if self.scheme == "multiple":
            return -(-count // self.step) * self.step
        if self.scheme == "sizes":
            return next((size for size in self.sizes if size >= count), count)
        power = 1 << (count - 1).bit_length()  # the next power of two
        if self.scheme == "half-octave" and count <= 3 * power // 4:
            return 3 * power // 4
        return power

    def sizes_up_to(self, limit: int) -> list[int]:
        """Every sub-batch size this scheme uses below a batch of ``limit`` (and ``limit``)."""
        return sorted({self.size_for(count, limit) for count in range(1, limit + 1)})

    def __str__(self) -> str:
        if self.scheme == "multiple":
            return f"multiples of {self.step}"
        if self.scheme == "sizes":
            if len(self.sizes) > 6:  # the first three, the last, and how many
                first = ", ".join(str(size) for size in self.sizes[:3])
                return f"sizes {first}, …, {self.sizes[-1]} ({len(self.sizes)} sizes)"
            return "sizes " + ", ".join(str(size) for size in self.sizes)
        return self.scheme


#: What ``buckets="auto"`` means: multiples of 8 up to 64, then half octaves up to 4096; see
#: ``docs/benchmarks.md`` for the measurements behind it.
DEFAULT_BUCKETS = SizeBuckets.listed(
    (*range(8, 65, 8), *(size for power in range(7, 13) for size in (3 << (power - 2), 1 << power)))
)

#: What ``buckets=`` accepts (see :meth:`SizeBuckets.parse`).
BucketSpec: TypeAlias = "SizeBuckets | str | int | Sequence[int] | None"
