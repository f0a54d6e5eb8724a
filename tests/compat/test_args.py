"""adanet.compat.args: reading the originals' ``args.txt`` without evaluating it."""

from __future__ import annotations

from pathlib import Path

import pytest

from adanet.compat.args import (
    REFERENCE_DATASETS,
    parse_dash_list,
    parse_reference_args,
    read_options,
)
from adanet.data import DATASETS

LINE = "Namespace(arch='RANet', data='cifar100', grFactor=[4, 2, 1], step=2, use_valid=False)"


def test_the_line_is_read_as_literals_from_text_or_a_file(tmp_path: Path) -> None:
    expected = {"arch": "RANet", "data": "cifar100", "grFactor": [4, 2, 1], "step": 2}
    assert parse_reference_args(LINE) == {**expected, "use_valid": False}
    path = tmp_path / "args.txt"
    path.write_text(f"  {LINE}\n", encoding="utf-8")
    assert (
        parse_reference_args(path) == parse_reference_args(str(path)) == parse_reference_args(LINE)
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Namespace(arch=__import__('os').getcwd())", "'arch' is not a Python literal"),
        ("Namespace(", "cannot parse the reference args"),
        ("Namespace(1, 2)", "expected one 'Namespace"),
        ("Namespace(**{'arch': 'RANet'})", "'\\*\\*' expansions are not allowed"),
    ],
)
def test_anything_but_literal_keywords_is_refused(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_reference_args(text)


def test_a_missing_file_or_another_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no args file"):
        parse_reference_args(tmp_path / "args.txt")
    with pytest.raises(TypeError, match="got int"):
        parse_reference_args(3)  # type: ignore[arg-type]


def test_dash_lists_become_tuples_and_other_values_pass_through() -> None:
    assert parse_dash_list("grFactor", "4-2-1") == (4, 2, 1)
    assert parse_dash_list("grFactor", [4, 2]) == (4, 2)
    assert parse_dash_list("step", 3) == 3
    with pytest.raises(ValueError, match="grFactor must look like '4-2-1', got '4-x'"):
        parse_dash_list("grFactor", "4-x")


def test_options_give_the_variant_and_classes_of_their_dataset() -> None:
    args, variant, num_classes = read_options(LINE, arch="ranet")
    assert args["step"] == 2 and (variant, num_classes) == ("cifar", 100)
    # Without --data the originals default to CIFAR-10; without --arch the caller's is taken.
    assert read_options("Namespace(step=1)", arch="msdnet")[1:] == ("cifar", 10)
    assert read_options("Namespace(data='ImageNet')", arch="RANet")[1:] == ("imagenet", 1000)
    assert {n: (i.variant, i.num_classes) for n, i in DATASETS.items()} == REFERENCE_DATASETS


def test_options_of_another_network_or_dataset_are_refused() -> None:
    with pytest.raises(ValueError, match=r"arch='RANet', not msdnet \(read them with"):
        read_options(LINE, arch="msdnet")
    with pytest.raises(ValueError, match=r"arch='resnet', not RANet$"):
        read_options("Namespace(arch='resnet')", arch="RANet")
    with pytest.raises(ValueError, match="unknown dataset data='svhn'"):
        read_options("Namespace(data='svhn')", arch="RANet")
