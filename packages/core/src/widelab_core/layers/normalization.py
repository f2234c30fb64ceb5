"""Layer normalisation and dropout."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ._base import Layer, LayerError, ShapeError, check_single


def _canonical_axes(layer: Layer, axis, ndim: int, shape) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(layer, f"axis {a} is out of range for input shape {tuple(shape)}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(layer, f"repeated axes {axes} for input shape {tuple(shape)}")
    return tuple(sorted(out))


@dataclasses.dataclass(frozen=True)
class LayerNorm(Layer):
    """Normalise to zero mean and unit variance over ``axis`` (Neural Tangents' ``stax.LayerNorm``).

    ``y = (x - mean_axis(x)) / sqrt(var_axis(x) + eps)`` with the (biased) variance over
    the entries along ``axis``; no learned gain or bias. When ``axis`` includes spatial
    (or batch) axes and a padding mask is present, masked positions are left out of the
    mean and variance; the mask passes through unchanged.

    Args:
        axis: an int or a tuple of ints, the axes to normalise over (default: channels).
        eps: added to the variance.

    Raises:
        ValueError: ``eps < 0``.
        ShapeError: an axis out of range for the input.

    Example:
        >>> import jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> y = L.LayerNorm().apply((), jnp.array([[1.0, 2.0, 3.0]]))
        >>> [round(float(v), 4) for v in y[0]]
        [-1.2247, 0.0, 1.2247]
    """

    axis: int | tuple[int, ...] = -1
    eps: float = 1e-12

    def __post_init__(self):
        if not isinstance(self.axis, int):
            try:
                object.__setattr__(self, "axis", tuple(int(a) for a in self.axis))
            except TypeError:
                raise ValueError(
                    f"LayerNorm: axis must be an int or a tuple of ints, got {self.axis!r}"
                ) from None
            if not self.axis:
                raise ValueError("LayerNorm: axis must not be empty")
        if float(self.eps) < 0:
            raise ValueError(f"LayerNorm: eps must be >= 0, got {self.eps}")

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        _canonical_axes(self, self.axis, len(shape), shape)
        return shape, ()

    def apply_masked(self, params, x, mask, key):
        axes = _canonical_axes(self, self.axis, x.ndim, x.shape)
        if mask is None or axes == (x.ndim - 1,):
            mean = jnp.mean(x, axis=axes, keepdims=True)
            var = jnp.mean((x - mean) ** 2, axis=axes, keepdims=True)
        else:
            w = jnp.broadcast_to(~mask, x.shape).astype(x.dtype)
            n = jnp.maximum(jnp.sum(w, axis=axes, keepdims=True), 1)
            mean = jnp.sum(w * x, axis=axes, keepdims=True) / n
            var = jnp.sum(w * (x - mean) ** 2, axis=axes, keepdims=True) / n
        return (x - mean) * jax.lax.rsqrt(var + self.eps), mask


@dataclasses.dataclass(frozen=True)
class Dropout(Layer):
    """Inverted dropout: zero each entry with probability ``rate``, scale the rest by
    ``1 / (1 - rate)``, so ``E[y] = x`` (Srivastava et al. 2014).

    Note: ``rate`` is the *drop* probability (``rate=0`` keeps everything). Neural
    Tangents' ``stax.Dropout(rate)`` takes the *keep* probability instead;
    :attr:`keep_rate` gives ``1 - rate`` for rules written in that convention.

    Args:
        rate: probability of dropping an entry, in ``[0, 1)``.
        mode: ``"train"`` (random, needs ``key=`` in ``apply``) or ``"test"`` (identity).

    Raises:
        ValueError: ``rate`` outside ``[0, 1)`` or an unknown ``mode`` (at construction).
        LayerError: ``apply`` in train mode without a ``key`` (a ``ValueError``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> y = L.Dropout(0.5).apply((), jnp.ones((2, 3)), key=jax.random.key(0))
        >>> sorted(set(y.ravel().tolist())) in ([0.0, 2.0], [2.0], [0.0])
        True
    """

    rate: float
    mode: str = "train"

    def __post_init__(self):
        try:
            rate = float(self.rate)
        except (TypeError, ValueError):
            raise ValueError(f"Dropout: rate must be a number, got {self.rate!r}") from None
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate (drop probability) must be in [0, 1), got {rate}")
        if self.mode not in ("train", "test"):
            raise ValueError(f"Dropout: mode must be 'train' or 'test', got {self.mode!r}")

    @property
    def keep_rate(self) -> float:
        """Probability of keeping an entry, ``1 - rate`` (Neural Tangents' ``rate``)."""
        return 1.0 - float(self.rate)

    def init(self, key, input_shape):
        return check_single(self, input_shape), ()

    def apply_masked(self, params, x, mask, key):
        if self.mode == "test" or float(self.rate) == 0.0:
            return x, mask
        if key is None:
            raise LayerError(
                self,
                "needs a random key in train mode: call apply(params, x, key=jax.random.key(...)) "
                "or use mode='test'",
            )
        keep = jax.random.bernoulli(key, self.keep_rate, x.shape)
        y = jnp.where(keep, x / jnp.asarray(self.keep_rate, x.dtype), jnp.zeros((), x.dtype))
        return y, mask
