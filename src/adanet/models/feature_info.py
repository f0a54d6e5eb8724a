"""``FeatureInfo``: what each exit's feature map is, described as timm describes features."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

from adanet._validation import is_int

__all__ = ["FeatureInfo"]

_KEYS = ("num_chs", "reduction", "module")


class FeatureInfo:
    """One entry per exit: the channels (``num_chs``), the downsampling relative to the input
    (``reduction``) and the name of the module (``module``) of the feature map that exit's
    head classifies, with timm's accessors.

    ``feature_info.channels()`` lists every exit's channels, ``feature_info.channels(k)`` gives
    exit ``k``'s; ``reduction`` and ``module_name`` work the same way. Indexing and iteration
    give copies of the entries as dicts (``feature_info[k]["num_chs"]``), as timm's
    ``FeatureInfo`` does.

    Args:
        entries: Per exit, a mapping with at least ``num_chs`` (int), ``reduction`` (int) and
            ``module`` (str).

    Raises:
        ValueError: An entry lacks one of those keys.
    """

    def __init__(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self._entries: list[dict[str, Any]] = []
        for k, entry in enumerate(entries):
            missing = [key for key in _KEYS if key not in entry]
            if missing:
                raise ValueError(f"feature_info entry {k} lacks {missing}: {dict(entry)!r}")
            self._entries.append(dict(entry))

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        """The value of ``key`` for every entry (``idx=None``), one entry, or several.

        Raises:
            TypeError: ``idx`` is neither an int, a sequence of ints nor ``None``.
            IndexError: An index outside ``[-len, len)``.
        """
        if idx is None:
            return [entry[key] for entry in self._entries]
        if isinstance(idx, Sequence) and not isinstance(idx, (str, bytes)):
            return [self._entries[self._position(i, "exit indices must be ints")][key] for i in idx]
        allowed = "idx must be an exit index, a sequence of them or None"
        return self._entries[self._position(idx, allowed)][key]

    def _position(self, idx: object, allowed: str) -> int:
        """``idx`` if it indexes an entry; ``allowed`` says what else was expected."""
        # An exit index, as for a list: bools are refused and out-of-range is an IndexError.
        if not is_int(idx):
            raise TypeError(f"{allowed}, got {idx!r}")
        if not -len(self._entries) <= idx < len(self._entries):
            raise IndexError(f"exit index {idx} is out of range for {len(self._entries)} exits")
        return idx

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        """Channels of each exit's feature map (a list), or of exit ``idx`` (an int)."""
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        """Downsampling of each exit's feature map relative to the input image."""
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        """Name of the module (in ``named_modules()``) whose output each exit classifies."""
        return self.get("module", idx)

    def get_dicts(self) -> list[dict[str, Any]]:
        """Every entry as a (copied) dict."""
        return [dict(entry) for entry in self._entries]

    @overload
    def __getitem__(self, idx: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, idx: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, idx: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(idx, slice):
            return [dict(entry) for entry in self._entries[idx]]
        return dict(self._entries[idx])

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.get_dicts())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureInfo) and self._entries == other._entries

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container: not hashable

    def __repr__(self) -> str:
        return f"FeatureInfo({self._entries!r})"
