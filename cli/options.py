"""What several ``ckd-events`` commands share: name lists read from the library, common defaults.

Every choice of a name (dataset, encoder, architecture, framing mode, ...) is read from the list
the library keeps, so adding a dataset or a model to the library is one edit and the CLI follows.
The lists are imported when a command first needs them (parsing or ``--help``), so that
``ckd-events --help`` does not import torch.
"""

from __future__ import annotations

import importlib
import os

import click

DEFAULT_WORKERS = min(4, os.cpu_count() or 1)
SPLITS = ("test", "val", "train")  # the order --split lists them in; pipelines.train.pick_split reads them


class LibraryChoice(click.Choice):
    """A ``click.Choice`` over names the library lists.

    Each source is ``"module:attribute"`` (a tuple of names, or a dict whose keys are the names)
    or a plain name the CLI itself handles (such as ``auto``); the choices are their
    concatenation, in order, read when first needed.
    """

    def __init__(self, *sources: str):
        self._sources = sources
        self._loaded: tuple[str, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        if self._loaded is None:
            names: list[str] = []
            for source in self._sources:
                module, sep, attribute = source.partition(":")
                names += getattr(importlib.import_module(module), attribute) if sep else [source]
            self._loaded = tuple(names)
        return self._loaded

    @choices.setter
    def choices(self, value) -> None:
        self._loaded = tuple(value)


def is_main_process() -> bool:
    """False in the ranks > 0 of a torchrun launch (only rank 0 prints)."""
    return int(os.environ.get("RANK", "0")) == 0
