import pytest

from adanet.inference import DEFAULT_BUCKETS, SizeBuckets


def test_powers_of_two() -> None:
    buckets = SizeBuckets.parse("pow2")
    assert [buckets.size_for(n, 64) for n in (1, 2, 3, 5, 8, 9, 33, 63, 64)] == [
        1, 2, 4, 8, 8, 16, 64, 64, 64,
    ]  # fmt: skip
    assert buckets.sizes_up_to(64) == [1, 2, 4, 8, 16, 32, 64]


def test_half_octaves() -> None:
    buckets = SizeBuckets.parse("half-octave")
    assert buckets.sizes_up_to(64) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]
    assert [buckets.size_for(n, 64) for n in (5, 7, 13, 25, 33, 49)] == [6, 8, 16, 32, 48, 64]


def test_multiples_sizes_and_exact() -> None:
    assert SizeBuckets.parse(8).sizes_up_to(30) == [8, 16, 24, 30]
    listed = SizeBuckets.parse([16, 4, 4])
    assert listed.sizes == (4, 16)
    # Above the largest listed size a count runs unpadded.
    assert [listed.size_for(n, 64) for n in (1, 4, 5, 16, 17, 40)] == [4, 4, 16, 16, 17, 40]
    for spec in ("exact", None, False):
        exact = SizeBuckets.parse(spec)
        assert [exact.size_for(n, 64) for n in (1, 7, 63)] == [1, 7, 63]


def test_never_larger_than_the_running_batch() -> None:
    # A stage never runs on more rows than it would without early exit.
    for spec in ("pow2", "half-octave", 16, [100]):
        buckets = SizeBuckets.parse(spec)
        for limit in (1, 5, 40):
            for count in range(1, limit + 1):
                size = buckets.size_for(count, limit)
                assert count <= size <= limit


def test_auto_is_the_default_and_objects_pass_through() -> None:
    assert SizeBuckets.parse("auto") == DEFAULT_BUCKETS
    # Multiples of 8 up to 64, then half octaves; a batch never grows.
    assert DEFAULT_BUCKETS.sizes_up_to(64) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert DEFAULT_BUCKETS.sizes_up_to(300)[8:] == [96, 128, 192, 256, 300]
    assert DEFAULT_BUCKETS.size_for(3, 5) == 5 and DEFAULT_BUCKETS.size_for(1, 1) == 1
    assert str(DEFAULT_BUCKETS) == "sizes 8, 16, 24, …, 4096 (20 sizes)"
    buckets = SizeBuckets.multiples(4)
    assert SizeBuckets.parse(buckets) is buckets
    assert str(buckets) == "multiples of 4"
    assert str(SizeBuckets.parse([2, 8])) == "sizes 2, 8"
    assert str(SizeBuckets.powers_of_two()) == "pow2"
    assert SizeBuckets.exact() == SizeBuckets.parse("exact")
    assert SizeBuckets.half_octaves() == SizeBuckets.parse("half-octave")


@pytest.mark.parametrize(
    ("spec", "error", "words"),
    [
        ("fast", ValueError, "'auto', 'exact', 'pow2', 'half-octave'"),
        (0, ValueError, "multiple must be an int >= 1"),
        (2.5, TypeError, "buckets must be"),
        ([], TypeError, "non-empty sequence"),
        ([4, 0], ValueError, ">= 1"),
        ([4, True], TypeError, "sequence of ints"),
        (True, TypeError, "buckets must be"),
    ],
)
def test_bad_specifications(spec: object, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        SizeBuckets.parse(spec)  # type: ignore[arg-type]


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="scheme must be one of"):
        SizeBuckets("fibonacci")
