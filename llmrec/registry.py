"""Name → object registries: explicit registration, and unknown names that fail loudly listing the valid ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from llmrec.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of factories (classes or functions).

    >>> scorers = Registry("scorer")
    >>> @scorers.register("pop")
    ... class Popularity: ...
    >>> scorers.get("pop") is Popularity
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj, help)
            return obj

        return deco

    def add(self, name: str, obj: T, help: str = "") -> None:
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        doc = help or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
        self._help[name] = doc

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def help(self, name: str) -> str:
        return self._help.get(name, "")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
