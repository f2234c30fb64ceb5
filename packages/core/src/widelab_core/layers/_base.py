"""The layer protocol: immutable values with finite-width ``init`` and ``apply``.

A layer is a frozen dataclass. Its finite-width meaning is two pure functions:

* ``init(key, input_shape) -> (output_shape, params)`` infers shapes and draws
  parameters (plain pytrees);
* ``apply(params, x, *, key=None, mask_constant=None, mask=None) -> y``.

Other packages give the same values other meanings (kernels, priors) by looking up
the layer's *type* in their own registries; nothing here knows about them.

Networks with several branches pass lists of arrays (and lists of shapes) between
layers, as in ``jax.example_libraries.stax``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

Shape = tuple[int, ...]
Params = Any


class LayerError(ValueError):
    """A layer cannot run on what it was given (bad input, missing key, ...).

    The message names the layer, its position in the network (``where``) and what
    was wrong. Combinators prepend their position as the error travels out, so a
    message reads ``"Dense(out_dim=8, ...) at serial[2]: ..."``.
    """

    def __init__(self, layer: Layer | str, detail: str, where: str = ""):
        self.layer = layer if isinstance(layer, str) else layer.describe()
        self.detail = detail
        self.where = where
        super().__init__(self._message())

    def _message(self) -> str:
        loc = f" at {self.where}" if self.where else ""
        return f"{self.layer}{loc}: {self.detail}"

    def at(self, position: str) -> LayerError:
        """Return the same error located one level further out (``position`` first)."""
        where = f"{position}/{self.where}" if self.where else position
        return type(self)(self.layer, self.detail, where)


class ShapeError(LayerError):
    """A layer received an input shape it cannot take.

    The message names the layer, its position in the network (``where``) and the
    shapes involved. Combinators prepend their position as the error travels out.
    """


def is_multi(shape_or_x: Any) -> bool:
    """True for a list/tuple of shapes or arrays (several branches)."""
    if isinstance(shape_or_x, list):
        return True
    if isinstance(shape_or_x, tuple):
        return len(shape_or_x) > 0 and not isinstance(shape_or_x[0], int)
    return False


def input_mask(x: Any, mask_constant: float | None) -> Any:
    """Per-position padding mask of an input: ``True`` where every channel equals ``c``.

    Returns an array of shape ``x.shape[:-1] + (1,)`` (or a list for several inputs),
    or ``None`` when ``mask_constant`` is ``None``.
    """
    if mask_constant is None:
        return None
    if is_multi(x):
        return [input_mask(xi, mask_constant) for xi in x]
    x = jnp.asarray(x)
    return jnp.all(x == mask_constant, axis=-1, keepdims=True)


def zero_masked(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Zero the padded positions of ``x`` (no-op when ``mask`` is None)."""
    if mask is None:
        return x
    return jnp.where(mask, jnp.zeros((), x.dtype), x)


#: The graph ``pattern`` given to the ``apply`` call in progress (read by ``Aggregate``).
_PATTERN: contextvars.ContextVar[Any] = contextvars.ContextVar("widelab_pattern", default=None)


def current_pattern() -> Any:
    """The ``pattern`` passed to the enclosing :meth:`Layer.apply` call (or ``None``)."""
    return _PATTERN.get()


@contextlib.contextmanager
def _pattern_scope(pattern: Any):
    if pattern is None:
        yield
        return
    token = _PATTERN.set(pattern)
    try:
        yield
    finally:
        _PATTERN.reset(token)


@dataclasses.dataclass(frozen=True)
class Layer:
    """Base class of every layer value.

    Subclasses implement :meth:`init` and :meth:`apply_masked`. The public
    :meth:`apply` builds the input mask from ``mask_constant`` and hides the mask
    that ``apply_masked`` passes on.
    """

    def init(self, key: jax.Array, input_shape: Shape | Sequence[Shape]) -> tuple[Any, Params]:
        """Infer the output shape and draw parameters.

        Args:
            key: a ``jax.random`` key.
            input_shape: ``(batch, ..., channels)``; ``batch`` may be ``-1``. A list of
                shapes for layers that take several branches.

        Returns:
            ``(output_shape, params)``; params are a plain pytree (``()`` if none).

        Raises:
            ShapeError: the input shape does not fit the layer.
        """
        raise NotImplementedError

    def apply_masked(
        self, params: Params, x: Any, mask: Any, key: jax.Array | None
    ) -> tuple[Any, Any]:
        """Apply with an explicit padding mask; return ``(y, mask_of_y)``."""
        raise NotImplementedError

    def apply(
        self,
        params: Params,
        x: Any,
        *,
        key: jax.Array | None = None,
        mask_constant: float | None = None,
        mask: Any = None,
        pattern: Any = None,
    ) -> Any:
        """Run the finite network.

        Args:
            params: the pytree returned by :meth:`init`.
            x: ``(batch, ..., channels)`` array (a list for multi-input layers).
            key: a ``jax.random`` key, needed by stochastic layers (``Dropout``).
            mask_constant: input positions whose channels all equal this value are
                padding and are excluded from pooling and attention.
            mask: an explicit boolean mask of shape ``x.shape[:-1] + (1,)`` instead of
                ``mask_constant``.
            pattern: the graph of each input for ``Aggregate`` layers (its format is
                the layer's ``implementation``); every ``Aggregate`` of the network
                uses it. ``None``: aggregation is the identity.

        Returns:
            The network's output.
        """
        if mask is None:
            mask = input_mask(x, mask_constant)
        with _pattern_scope(pattern):
            y, _ = self.apply_masked(params, x, mask, key)
        return y

    def output_shape(self, input_shape: Shape | Sequence[Shape]) -> Any:
        """Shape inference without drawing parameters (traced abstractly)."""
        box = []

        def draw(k):
            shape, params = self.init(k, input_shape)
            box.append(shape)
            return params

        jax.eval_shape(draw, jax.random.key(0))
        return box[0]

    def describe(self) -> str:
        """A short readable name such as ``Dense(out_dim=8)``."""
        fields = []
        for f in dataclasses.fields(self):
            if not f.repr:
                continue
            v = getattr(self, f.name)
            if isinstance(v, Layer) or (isinstance(v, tuple) and v and isinstance(v[0], Layer)):
                continue
            if callable(v):
                v = getattr(v, "__name__", "fn")
            fields.append(f"{f.name}={v!r}")
        return f"{type(self).__name__}({', '.join(fields)})"

    # Finite-width helpers ------------------------------------------------
    def __call__(self, *args, **kwargs):  # pragma: no cover - guard
        raise TypeError(
            f"{type(self).__name__} is a layer value: use .init(key, shape) and .apply(params, x)"
        )


def check_single(layer: Layer, input_shape: Any) -> Shape:
    """Return ``input_shape`` as a tuple, or raise if it is a list of branches."""
    if is_multi(input_shape):
        raise ShapeError(
            layer,
            f"expects one input, got {len(input_shape)} branches with shapes "
            f"{[tuple(s) for s in input_shape]}",
        )
    return tuple(int(d) for d in input_shape)


def check_rank(layer: Layer, shape: Shape, min_rank: int, what: str) -> None:
    """Raise a ``ShapeError`` unless ``len(shape) >= min_rank``."""
    if len(shape) < min_rank:
        raise ShapeError(layer, f"needs {what}, got input shape {shape}")
