"""The one data type every part of the kit passes around: :class:`Dataset`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, eq=False)
class Dataset:
    """A small labelled dataset held in memory.

    Attributes:
        name: dataset name, e.g. ``"glyphs"`` or ``"digits"`` (subsets keep it, with a
            suffix such as ``"glyphs[source]"``).
        x: inputs, float32; images ``(N, C, H, W)`` scaled to ``[0, 1]`` or vectors ``(N, D)``.
        y: int64 labels ``(N,)`` in ``0 .. n_classes - 1`` (always contiguous).
        class_names: one name per class (``class_names[y[i]]`` names example ``i``).
        class_groups: one group per class, e.g. the alphabet of a character.

    The dtype contract, checked when a ``Dataset`` is made (``ValueError`` naming ``x`` or
    ``y`` otherwise):

    * ``x`` must be a floating-point ``torch.Tensor``. float32 is kept as it is; another
      floating dtype (float64 from numpy, float16) is **converted to float32**, the dtype
      of every model of the kit. Integer, bool or complex ``x`` (e.g. ``torch.long``, or
      uint8 pixels) is **refused**: the kit cannot guess the scale (uint8 images must be
      divided by 255 first: ``x.float() / 255``).
    * ``y`` must be an integer ``torch.Tensor`` of non-negative labels. int64 is kept;
      another integer dtype (int32, uint8) is **converted to int64**. Float or bool
      labels are refused.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    class_names: tuple[str, ...]
    class_groups: tuple[str, ...]
    _counts: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._check_dtypes()
        if self.x.ndim not in (2, 4):
            raise ValueError(f"x must be (N, D) or (N, C, H, W), got shape {tuple(self.x.shape)}")
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"y must be (N,) with N={self.x.shape[0]}, got {tuple(self.y.shape)}")
        if len(self.class_names) != len(self.class_groups):
            raise ValueError("class_names and class_groups must have one entry per class")
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "class_groups", tuple(self.class_groups))
        if self.y.numel() and int(self.y.min()) < 0:
            raise ValueError(f"y must hold non-negative class labels (0 .. n_classes - 1), "
                             f"got minimum {int(self.y.min())}")
        counts = torch.bincount(self.y, minlength=len(self.class_names))
        if counts.numel() != len(self.class_names):
            raise ValueError(f"labels reach {int(self.y.max())} but only "
                             f"{len(self.class_names)} class names were given")
        object.__setattr__(self, "_counts", counts)

    def _check_dtypes(self) -> None:
        """The dtype contract of the class docstring: refuse or convert, by name."""
        if not isinstance(self.name, str):
            raise ValueError(f"name must be a string, got {self.name!r} "
                             f"({type(self.name).__name__})")
        for arg in ("x", "y"):
            value = getattr(self, arg)
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"{arg} must be a torch.Tensor, got {type(value).__name__} "
                                 f"(convert numpy arrays with torch.from_numpy)")
        if not self.x.dtype.is_floating_point:
            raise ValueError(f"x must be a float32 tensor, got dtype {self.x.dtype}: convert "
                             f"it explicitly (x.float(); uint8 images: x.float() / 255)")
        if self.x.dtype != torch.float32:
            object.__setattr__(self, "x", self.x.float())  # documented: floats -> float32
        if self.y.dtype.is_floating_point or self.y.dtype.is_complex or self.y.dtype == torch.bool:
            raise ValueError(f"y must hold integer class labels (torch.long), got dtype "
                             f"{self.y.dtype}")
        if self.y.dtype != torch.int64:
            object.__setattr__(self, "y", self.y.long())  # documented: integers -> int64

    # ---- shape facts -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def groups(self) -> tuple[str, ...]:
        """Distinct groups, in order of first appearance."""
        return tuple(dict.fromkeys(self.class_groups))

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: ``(C, H, W)`` or ``(D,)``."""
        return tuple(self.x.shape[1:])

    @property
    def class_counts(self) -> torch.Tensor:
        """Examples per class, ``(n_classes,)``."""
        return self._counts

    @property
    def min_class_size(self) -> int:
        return int(self._counts.min()) if self.n_classes else 0

    # ---- subsets -----------------------------------------------------------------------
    def select_classes(self, classes: Sequence[int], name: str | None = None) -> Dataset:
        """The examples of ``classes`` (class ids of this dataset), relabelled ``0..len-1``
        in the order given."""
        classes = [int(c) for c in classes]
        if len(set(classes)) != len(classes):
            raise ValueError("classes must not repeat")
        bad = [c for c in classes if not 0 <= c < self.n_classes]
        if bad:
            raise ValueError(f"classes {bad} out of range: "
                             f"must be between 0 and {self.n_classes - 1}")
        remap = torch.full((self.n_classes,), -1, dtype=torch.long)
        remap[torch.tensor(classes, dtype=torch.long)] = torch.arange(len(classes))
        new_y = remap[self.y]
        keep = new_y >= 0
        return Dataset(
            name=name or self.name,
            x=self.x[keep],
            y=new_y[keep],
            class_names=tuple(self.class_names[c] for c in classes),
            class_groups=tuple(self.class_groups[c] for c in classes),
        )

    def __repr__(self) -> str:
        kind = "images" if self.is_image else "vectors"
        counts = self._counts.tolist() or [0]
        return (f"Dataset({self.name!r}: {len(self)} {kind} of shape {self.input_shape}, "
                f"{self.n_classes} classes in {len(self.groups)} groups, "
                f"{min(counts)}-{max(counts)} examples per class)")
