"""Combinators: serial and parallel composition, fan-out/fan-in, compiled repetition."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ._base import Layer, LayerError, ShapeError, check_single, is_multi


def _as_layers(name, layers):
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{name}: argument {i} is not a layer: {layer!r}")
    return tuple(layers)


def _branch_masks(mask, n):
    """One mask per branch: a list mask as is, a single (or None) mask repeated."""
    return mask if is_multi(mask) else [mask] * n


def _split(key, n):
    if key is None:
        return [None] * n
    return list(jax.random.split(key, n))


@dataclasses.dataclass(frozen=True)
class Serial(Layer):
    """Layers applied one after another; params are a tuple, one entry per layer."""

    layers: tuple[Layer, ...]

    def init(self, key, input_shape):
        params = []
        shape = input_shape
        for i, (layer, k) in enumerate(zip(self.layers, _split(key, len(self.layers)))):
            try:
                shape, p = layer.init(k, shape)
            except LayerError as e:
                raise e.at(f"serial[{i}]") from None
            params.append(p)
        return shape, tuple(params)

    def apply_masked(self, params, x, mask, key):
        if len(params) != len(self.layers):
            raise ValueError(
                f"serial: {len(self.layers)} layers but params for {len(params)}; "
                "were the params made by this network's init?"
            )
        for i, (layer, p, k) in enumerate(zip(self.layers, params, _split(key, len(self.layers)))):
            try:
                x, mask = layer.apply_masked(p, x, mask, k)
            except LayerError as e:
                raise e.at(f"serial[{i}]") from None
        return x, mask


def serial(*layers: Layer) -> Serial:
    """Compose layers in sequence: ``serial(f, g)(x) = g(f(x))``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from widelab_core import layers as L
        >>> net = L.serial(L.Dense(16), L.Relu(), L.Dense(1))
        >>> shape, params = net.init(jax.random.key(0), (3, 5))
        >>> net.apply(params, jnp.ones((3, 5))).shape
        (3, 1)
    """
    return Serial(_as_layers("serial", layers))


@dataclasses.dataclass(frozen=True)
class Parallel(Layer):
    """Layers applied to the branches of a list input, one each."""

    layers: tuple[Layer, ...]

    def _check(self, n):
        if n != len(self.layers):
            raise ShapeError(self, f"has {len(self.layers)} layers but received {n} input branches")

    def init(self, key, input_shape):
        if not is_multi(input_shape):
            raise ShapeError(self, f"expects a list of input shapes, got {tuple(input_shape)}")
        self._check(len(input_shape))
        shapes, params = [], []
        for i, (layer, s, k) in enumerate(
            zip(self.layers, input_shape, _split(key, len(self.layers)))
        ):
            try:
                out, p = layer.init(k, s)
            except LayerError as e:
                raise e.at(f"parallel[{i}]") from None
            shapes.append(out)
            params.append(p)
        return shapes, tuple(params)

    def apply_masked(self, params, x, mask, key):
        if not is_multi(x):
            raise ShapeError(self, "expects a list of inputs, got a single array")
        self._check(len(x))
        masks = _branch_masks(mask, len(x))
        ys, ms = [], []
        for i, (layer, p, xi, mi, k) in enumerate(
            zip(self.layers, params, x, masks, _split(key, len(self.layers)))
        ):
            try:
                y, m = layer.apply_masked(p, xi, mi, k)
            except LayerError as e:
                raise e.at(f"parallel[{i}]") from None
            ys.append(y)
            ms.append(m)
        return ys, ms

    def describe(self):
        return f"parallel({len(self.layers)} branches)"


def parallel(*layers: Layer) -> Parallel:
    """Apply ``layers[i]`` to branch ``i`` of a list input; returns a list."""
    return Parallel(_as_layers("parallel", layers))


@dataclasses.dataclass(frozen=True)
class FanOut(Layer):
    """Copy one input into ``num`` branches."""

    num: int

    def __post_init__(self):
        if int(self.num) < 1:
            raise ValueError(f"FanOut: num must be >= 1, got {self.num}")

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        return [shape] * self.num, ()

    def apply_masked(self, params, x, mask, key):
        return [x] * self.num, [mask] * self.num


def _combine_masks(masks, op):
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    out = masks[0]
    for m in masks[1:]:
        out = op(out, m)
    return out


def _check_branches(layer, input_shape):
    if not is_multi(input_shape):
        raise ShapeError(layer, f"expects a list of branches, got one shape {tuple(input_shape)}")
    if len(input_shape) == 0:
        raise ShapeError(layer, "received no branches")
    return [tuple(s) for s in input_shape]


def _equal_branches(layer, input_shape):
    shapes = _check_branches(layer, input_shape)
    if any(s != shapes[0] for s in shapes):
        raise ShapeError(layer, f"branches must have equal shapes, got {shapes}")
    return shapes[0]


@dataclasses.dataclass(frozen=True)
class FanInSum(Layer):
    """Sum the branches (shapes must be equal). A position is padding only if it is
    padding in every branch."""

    def init(self, key, input_shape):
        return _equal_branches(self, input_shape), ()

    def apply_masked(self, params, x, mask, key):
        masks = _branch_masks(mask, len(x))
        return sum(x[1:], x[0]), _combine_masks(masks, jnp.logical_and)


@dataclasses.dataclass(frozen=True)
class FanInProd(Layer):
    """Multiply the branches elementwise (shapes must be equal)."""

    def init(self, key, input_shape):
        return _equal_branches(self, input_shape), ()

    def apply_masked(self, params, x, mask, key):
        out = x[0]
        for xi in x[1:]:
            out = out * xi
        masks = _branch_masks(mask, len(x))
        return out, _combine_masks(masks, jnp.logical_or)


@dataclasses.dataclass(frozen=True)
class FanInConcat(Layer):
    """Concatenate the branches along ``axis`` (other axes must agree)."""

    axis: int = -1

    def init(self, key, input_shape):
        shapes = _check_branches(self, input_shape)
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ShapeError(self, f"branches must have equal rank, got {shapes}")
        ax = self.axis % rank
        for s in shapes:
            if s[:ax] + s[ax + 1 :] != shapes[0][:ax] + shapes[0][ax + 1 :]:
                raise ShapeError(
                    self, f"branches must agree on all axes but {self.axis}, got {shapes}"
                )
        out = list(shapes[0])
        out[ax] = sum(s[ax] for s in shapes)
        return tuple(out), ()

    def apply_masked(self, params, x, mask, key):
        rank = x[0].ndim
        ax = self.axis % rank
        y = jnp.concatenate(x, axis=ax)
        masks = _branch_masks(mask, len(x))
        if all(m is None for m in masks):
            return y, None
        full = [
            jnp.zeros(xi.shape[:-1] + (1,), bool) if m is None else m for xi, m in zip(x, masks)
        ]
        if ax == rank - 1:
            return y, _combine_masks(full, jnp.logical_and)
        return y, jnp.concatenate(full, axis=ax)


@dataclasses.dataclass(frozen=True)
class Repeat(Layer):
    """``layer`` applied ``n`` times in a compiled loop, with untied parameters.

    Same computation as ``serial(*[layer] * n)``; params are the per-repetition
    params stacked on a leading axis of size ``n``. ``layer`` must keep its input
    shape.
    """

    layer: Layer
    n: int

    def init(self, key, input_shape):
        shape = check_single(self, input_shape)
        try:
            out = self.layer.output_shape(shape)
        except LayerError as e:
            raise e.at("repeat") from None
        if tuple(out) != shape:
            raise ShapeError(
                self,
                f"the repeated layer maps {shape} to {tuple(out)}; repeat needs an "
                "unchanged shape (use serial(*[layer] * n) instead)",
            )
        keys = jax.random.split(key, self.n)
        params = jax.vmap(lambda k: self.layer.init(k, shape)[1])(keys)
        return shape, params

    def apply_masked(self, params, x, mask, key):
        keys = None if key is None else jax.random.split(key, self.n)

        def body(carry, inp):
            xc, mc = carry
            p, k = inp
            try:
                y, m = self.layer.apply_masked(p, xc, mc, k)
            except LayerError as e:
                raise e.at("repeat") from None
            return (y, m), None

        (y, m), _ = jax.lax.scan(body, (x, mask), (params, keys), length=self.n)
        return y, m

    def describe(self):
        return f"repeat({self.layer.describe()}, n={self.n})"


def repeat(layer: Layer, n: int) -> Repeat:
    """Compose ``layer`` with itself ``n`` times (untied weights, compiled loop)."""
    if not isinstance(layer, Layer):
        raise TypeError(f"repeat: {layer!r} is not a layer")
    if int(n) < 1:
        raise ValueError(f"repeat: n must be >= 1, got {n}")
    return Repeat(layer, int(n))
