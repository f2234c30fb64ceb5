"""The public API for writing new layers, in core or in any other package.

A layer is a frozen dataclass that subclasses :class:`Layer` and implements two
methods:

* ``init(key, input_shape) -> (output_shape, params)``: check the input shape (raise
  :class:`ShapeError` naming the layer and the shape), draw parameters;
* ``apply_masked(params, x, mask, key) -> (y, mask_of_y)``: the forward pass; ``mask``
  marks padded positions (``None`` when there is none) and is passed on unchanged by
  layers that act per position.

Weights follow the two conventions of Neural Tangents' ``stax``. In the ``"ntk"``
parameterization the stored weights are N(0, 1) and the forward pass multiplies them by
``W_std / sqrt(fan_in)`` (biases by ``b_std``); in ``"standard"`` the stored weights are
already N(0, W_std^2 / fan_in) and the forward multiplier is 1 (Jacot et al., 2018,
"Neural Tangent Kernel", eq. 1; Sohl-Dickstein et al., 2020, "On the infinite width
limit of neural networks with a standard parameterization"). Use :func:`draw_weights`
and :func:`weight_scale` together so a layer gets both conventions right, and other
packages (kernels, priors) can read the same scales.

Example:
    >>> import dataclasses
    >>> import jax, jax.numpy as jnp
    >>> from widelab_core import extend
    >>> @dataclasses.dataclass(frozen=True)
    ... class Scale(extend.Layer):
    ...     W_std: float = 1.0
    ...     parameterization: str = "ntk"
    ...     def init(self, key, input_shape):
    ...         shape = extend.check_single(self, input_shape)
    ...         extend.check_rank(self, shape, 1, "a channel axis")
    ...         w = extend.draw_weights(key, (shape[-1],), 1, self.W_std,
    ...                                 self.parameterization, jnp.float32)
    ...         return shape, {"w": w}
    ...     def apply_masked(self, params, x, mask, key):
    ...         scale = extend.weight_scale(self.W_std, 1, self.parameterization)
    ...         return x * params["w"] * scale, mask
    >>> shape, params = Scale(2.0).init(jax.random.key(0), (3, 4))
    >>> shape
    (3, 4)

Kernels for a new layer are registered with ``widelab_kernels.register_rule``.
"""

from __future__ import annotations

from typing import Any, Literal

import jax

from .layers import _base, dense
from .layers._base import Layer, LayerError, Params, Shape, ShapeError

Parameterization = Literal["ntk", "standard"]

__all__ = [
    "Layer",
    "LayerError",
    "Parameterization",
    "Params",
    "Shape",
    "ShapeError",
    "add_bias",
    "bias_scale",
    "check_parameterization",
    "check_rank",
    "check_single",
    "draw_bias",
    "draw_weights",
    "input_mask",
    "is_multi",
    "weight_scale",
    "zero_masked",
]


def check_single(layer: Layer, input_shape: Any) -> Shape:
    """Return ``input_shape`` as a tuple of ints, or raise for several branches.

    Args:
        layer: the layer asking (named in the error).
        input_shape: what ``init`` received.

    Returns:
        The shape as a tuple of Python ints.

    Raises:
        ShapeError: ``input_shape`` is a list of shapes (a multi-branch input).

    Example:
        >>> from widelab_core import extend, layers as L
        >>> extend.check_single(L.Relu(), (4, 3))
        (4, 3)
    """
    return _base.check_single(layer, input_shape)


def check_rank(layer: Layer, shape: Shape, min_rank: int, what: str) -> None:
    """Raise unless ``shape`` has at least ``min_rank`` axes.

    Args:
        layer: the layer asking (named in the error).
        shape: the input shape.
        min_rank: the least number of axes the layer takes.
        what: what the layer needs, in words (e.g. ``"a channel axis"``).

    Raises:
        ShapeError: ``len(shape) < min_rank``; the message names the layer, ``what`` and
            the shape.

    Example:
        >>> from widelab_core import extend, layers as L
        >>> extend.check_rank(L.Relu(), (4, 3), 2, "batch and channel axes")
    """
    _base.check_rank(layer, shape, min_rank, what)


def is_multi(shape_or_x: Any) -> bool:
    """True for a list or tuple of shapes or arrays (a multi-branch value).

    Example:
        >>> from widelab_core import extend
        >>> extend.is_multi((2, 3)), extend.is_multi([(2, 3), (2, 3)])
        (False, True)
    """
    return _base.is_multi(shape_or_x)


def input_mask(x: Any, mask_constant: float | None) -> Any:
    """Padding mask of an input: True where every channel equals ``mask_constant``.

    Args:
        x: ``(batch, ..., channels)`` array, or a list of them.
        mask_constant: the padding value, or None for no mask.

    Returns:
        A boolean array of shape ``x.shape[:-1] + (1,)`` (a list for a list input), or
        None when ``mask_constant`` is None.

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import extend
        >>> extend.input_mask(jnp.array([[[0.0], [1.0]]]), 0.0).shape
        (1, 2, 1)
    """
    return _base.input_mask(x, mask_constant)


def zero_masked(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Set padded positions of ``x`` to zero (``x`` unchanged when ``mask`` is None).

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import extend
        >>> extend.zero_masked(jnp.ones((1, 2, 1)), jnp.array([[[True], [False]]])).ravel()
        Array([0., 1.], dtype=float32)
    """
    return _base.zero_masked(x, mask)


def check_parameterization(layer: Layer, parameterization: str) -> None:
    """Raise unless ``parameterization`` is ``"ntk"`` or ``"standard"``.

    Raises:
        ValueError: naming the layer, the value given and the allowed values.

    Example:
        >>> from widelab_core import extend, layers as L
        >>> extend.check_parameterization(L.Dense(2), "ntk")
    """
    dense.check_parameterization(layer, parameterization)


def draw_weights(
    key: jax.Array,
    shape: Shape,
    fan_in: int,
    W_std: float,
    parameterization: str,
    dtype: Any,
) -> jax.Array:
    """Draw stored weights: N(0, 1) for ``"ntk"``, N(0, W_std^2 / fan_in) for ``"standard"``.

    Args:
        key: a ``jax.random`` key.
        shape: shape of the weight array.
        fan_in: number of inputs summed per output (channels times filter size).
        W_std: weight standard deviation (sigma_w).
        parameterization: ``"ntk"`` or ``"standard"``.
        dtype: floating dtype of the weights.

    Returns:
        The weights to store in ``params``; multiply by :func:`weight_scale` in ``apply``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import extend
        >>> extend.draw_weights(jax.random.key(0), (4, 2), 4, 1.5, "ntk", jnp.float32).shape
        (4, 2)
    """
    return dense.draw_weights(key, shape, fan_in, W_std, parameterization, dtype)


def draw_bias(
    key: jax.Array, shape: Shape, b_std: float, parameterization: str, dtype: Any
) -> jax.Array:
    """Draw stored biases: N(0, 1) for ``"ntk"``, N(0, b_std^2) for ``"standard"``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import extend
        >>> extend.draw_bias(jax.random.key(0), (3,), 0.1, "standard", jnp.float32).shape
        (3,)
    """
    return dense.draw_bias(key, shape, b_std, parameterization, dtype)


def weight_scale(W_std: float, fan_in: int, parameterization: str) -> Any:
    """Forward-pass multiplier of stored weights: ``W_std / sqrt(fan_in)`` or 1.

    With :func:`draw_weights`, the effective weight ``scale * w`` is
    N(0, W_std^2 / fan_in) in both parameterizations (Jacot et al., 2018, eq. 1).

    Args:
        W_std: weight standard deviation (sigma_w).
        fan_in: number of inputs summed per output.
        parameterization: ``"ntk"`` or ``"standard"``.

    Returns:
        ``W_std / sqrt(fan_in)`` for ``"ntk"``, ``1.0`` for ``"standard"``.

    Example:
        >>> from widelab_core import extend
        >>> float(extend.weight_scale(2.0, 4, "ntk")), extend.weight_scale(2.0, 4, "standard")
        (1.0, 1.0)
    """
    return dense.weight_scale(W_std, fan_in, parameterization)


def bias_scale(b_std: float, parameterization: str) -> Any:
    """Forward-pass multiplier of stored biases: ``b_std`` for ``"ntk"``, 1 for ``"standard"``.

    Example:
        >>> from widelab_core import extend
        >>> extend.bias_scale(0.1, "ntk"), extend.bias_scale(0.1, "standard")
        (0.1, 1.0)
    """
    return dense.bias_scale(b_std, parameterization)


def add_bias(y: jax.Array, b: jax.Array, scale: Any) -> jax.Array:
    """``y + scale * b`` with the per-channel bias broadcast explicitly over leading axes.

    Rank promotion is an error in widelab's tests, so layers add biases through this.

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import extend
        >>> extend.add_bias(jnp.zeros((2, 3)), jnp.ones(3), 0.5)[1]
        Array([0.5, 0.5, 0.5], dtype=float32)
    """
    return dense.add_bias(y, b, scale)
