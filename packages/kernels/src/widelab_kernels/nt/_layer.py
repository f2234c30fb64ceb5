"""Neural Tangents' layer triple over a widelab layer value.

A :class:`StaxLayer` *is* a widelab layer (a ``widelab_core.layers.Layer`` whose
finite-width meaning and kernel rule are those of the layer it wraps), and it also
unpacks to Neural Tangents' ``(init_fn, apply_fn, kernel_fn)`` triple. So one
definition serves both worlds::

    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(8), stax.Relu())
    widelab_kernels.kernel_fn(stax.serial(stax.Dense(8), stax.Relu()))  # also fine
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax.numpy as jnp
from widelab_core.layers import Layer

from ..analytic import FIELDS, KernelFn, _result_type
from ..kernel import Kernel
from ..registry import RuleContext, apply_rule, needs_full_spatial, register_rule
from . import _masked_array


def unwrap(layer: Any, where: str) -> Layer:
    """The widelab layer value behind ``layer`` (a :class:`StaxLayer` or a core layer)."""
    if isinstance(layer, StaxLayer):
        return layer.layer
    if isinstance(layer, Layer):
        return layer
    if isinstance(layer, tuple) and len(layer) == 3 and all(callable(f) for f in layer):
        from .custom import from_triple  # a hand-written NT triple

        return from_triple(layer)
    raise TypeError(
        f"{where}: expected a layer made by widelab_kernels.nt.stax, a widelab layer "
        f"value or an (init_fn, apply_fn, kernel_fn) triple, got {type(layer).__name__}"
    )


def nt_apply_kwargs(kwargs: dict) -> dict:
    """Translate Neural Tangents' ``apply_fn`` keywords to widelab's (``rng`` -> ``key``)."""
    out = dict(kwargs)
    if "rng" in out:
        out["key"] = out.pop("rng")
    return out


@dataclasses.dataclass(frozen=True)
class StaxLayer(Layer):
    """A widelab layer value that also unpacks to NT's ``(init_fn, apply_fn, kernel_fn)``.

    Attributes:
        layer: the widelab layer value it stands for (its finite-width and kernel
            meaning).
    """

    layer: Layer

    def init(self, key, input_shape):
        return self.layer.init(key, input_shape)

    def apply_masked(self, params, x, mask, key):
        return self.layer.apply_masked(params, x, mask, key)

    def describe(self) -> str:
        return self.layer.describe()

    # Neural Tangents' triple ----------------------------------------------
    def init_fn(self, rng, input_shape):
        """``init_fn(rng, input_shape) -> (output_shape, params)``."""
        return self.layer.init(rng, input_shape)

    def apply_fn(self, params, inputs, **kwargs):
        """``apply_fn(params, inputs, *, rng=None, mask_constant=None)``.

        With ``mask_constant`` (or a :class:`MaskedArray` input) the output is a
        ``MaskedArray`` of the values and their per-position padding mask, as in NT.
        """
        kwargs = nt_apply_kwargs(kwargs)
        mask_constant = kwargs.pop("mask_constant", None)
        if mask_constant is None and not _masked_array.is_masked(inputs):
            return self.layer.apply(params, inputs, **kwargs)
        key = kwargs.pop("key", None)
        if kwargs:
            raise TypeError(f"apply_fn: unexpected keyword argument(s) {sorted(kwargs)}")
        x, mask = _masked_array.split(inputs, mask_constant)
        y, out_mask = self.layer.apply_masked(params, x, mask, key)
        return _masked_array.join(y, out_mask)

    @functools.cached_property
    def kernel_fn(self) -> NtKernelFn:
        """``kernel_fn(x1, x2=None, get=None, **kwargs)`` in Neural Tangents' conventions."""
        return NtKernelFn(self.layer)

    def __iter__(self):
        return iter((self.init_fn, self.apply_fn, self.kernel_fn))

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i):
        return (self.init_fn, self.apply_fn, self.kernel_fn)[i]


def _stax_rule(layer: StaxLayer, k, ctx: RuleContext):
    return apply_rule(layer.layer, k, ctx)


register_rule(StaxLayer, _stax_rule, needs_full_spatial=lambda s: needs_full_spatial(s.layer))


def _interleave(a, d: int, lead: int):
    """``(*lead, *S1, *S2)`` (widelab's all-pairs layout) to ``(*lead, s1, s1', s2, ...)``
    (Neural Tangents' layout)."""
    if a is None or d == 0:
        return a
    perm = list(range(lead))
    for i in range(d):
        perm += [lead + i, lead + d + i]
    return jnp.transpose(a, perm)


def to_nt_layout(k: Kernel, diagonal_batch: bool = True) -> Kernel:
    """A widelab :class:`Kernel` with its arrays in Neural Tangents' axis order."""
    if isinstance(k, list):
        return [to_nt_layout(ki, diagonal_batch) for ki in k]
    d = k.n_spatial
    if k.diagonal_spatial or d == 0:
        return k
    lead = 1 if diagonal_batch else 2
    return k.replace(
        nngp=_interleave(k.nngp, d, 2),
        ntk=_interleave(k.ntk, d, 2),
        cov1=_interleave(k.cov1, d, lead),
        cov2=_interleave(k.cov2, d, lead),
    )


def _nt_get(get):
    if get is None:
        return None, None
    if isinstance(get, str):
        return (get,), get
    names = tuple(get)
    if not names:
        raise ValueError("kernel_fn: get is an empty tuple; name some of 'nngp', 'ntk'")
    return names, names


class NtKernelFn:
    """Neural Tangents' ``kernel_fn(x1, x2=None, get=None, **kwargs)`` of a network.

    The kernels come from :func:`widelab_kernels.kernel_fn`; this class only chooses
    the spatial layout NT would return (all pairs of positions for outputs that keep
    spatial axes, unless ``diagonal_spatial=True``) and reorders axes to NT's
    ``(n1, n2, s1, s1', s2, s2', ...)``. ``get`` a string gives that array, a tuple a
    named tuple with exactly those fields (also for one name), ``None`` the
    :class:`~widelab_kernels.Kernel`. ``x1`` may also be a ``Kernel`` or a list of
    inputs, as in NT.
    """

    def __init__(self, net: Layer):
        self.net = net
        self._fn = KernelFn(net)

    def __call__(
        self,
        x1,
        x2=None,
        get=None,
        *,
        mask_constant=None,
        diagonal_batch: bool = True,
        diagonal_spatial: bool = False,
        batch_axis: int = 0,
        channel_axis: int = -1,
        pattern=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"kernel_fn: unsupported keyword argument(s) {sorted(kwargs)}; widelab's "
                "kernel_fn takes get, mask_constant, diagonal_batch, diagonal_spatial, "
                "batch_axis, channel_axis and pattern"
            )
        names, shape = _nt_get(get)
        if names is not None:
            bad = [n for n in names if n not in FIELDS]
            if bad:
                raise ValueError(f"kernel_fn: get must name fields of {FIELDS}, got {bad}")
        layout = None
        if diagonal_spatial:
            layout = True
        elif isinstance(x1, (list, tuple)) or hasattr(x1, "nngp"):
            layout = False
        elif _has_spatial_output(self.net, _batch_first_shape(x1, batch_axis, channel_axis)):
            layout = False
        out = self._fn(
            x1,
            x2,
            get=None if names is None else names,
            mask_constant=mask_constant,
            diagonal_batch=diagonal_batch,
            diagonal_spatial=layout,
            batch_axis=batch_axis,
            channel_axis=channel_axis,
            pattern=pattern,
        )
        if names is None:
            return to_nt_layout(out, diagonal_batch)
        return _reorder(out, names, shape, diagonal_batch, per_position=layout is True)


def _batch_first_shape(x, batch_axis, channel_axis):
    shape = list(jnp.shape(x))
    nd = len(shape)
    b, c = batch_axis % nd, channel_axis % nd
    rest = [shape[i] for i in range(nd) if i not in (b, c)]
    return (shape[b], *rest, shape[c])


def _reorder_one(name: str, a, n_spatial: int | None, diagonal_batch: bool):
    lead = 2 if name in ("nngp", "ntk") or not diagonal_batch else 1
    if a is None or n_spatial is None:
        return a
    return _interleave(a, n_spatial, lead)


def _spatial_pairs(out, names, diagonal_batch) -> int | None:
    """Number of interleavable spatial axes (``None``: the layout is per position)."""
    first = out if len(names) == 1 else getattr(out, names[0])
    lead = 2 if names[0] in ("nngp", "ntk") or not diagonal_batch else 1
    rest = first.ndim - lead
    return rest // 2 if rest and rest % 2 == 0 and _all_pairs(first, lead) else None


def _all_pairs(a, lead: int) -> bool:
    d = (a.ndim - lead) // 2
    return d > 0 and a.shape[lead : lead + d] == a.shape[lead + d :]


def _reorder(out, names, shape, diagonal_batch: bool, per_position: bool):
    if isinstance(out, list):
        return [_reorder(o, names, shape, diagonal_batch, per_position) for o in out]
    d = None if per_position else _spatial_pairs(out, names, diagonal_batch)
    if len(names) == 1:
        a = _reorder_one(names[0], out, d, diagonal_batch)
        return a if isinstance(shape, str) else _result_type(names)(a)
    return _result_type(names)(
        *(_reorder_one(n, getattr(out, n), d, diagonal_batch) for n in names)
    )


@functools.lru_cache(maxsize=256)
def _output_rank(net: Layer, shape: tuple) -> Any:
    out = net.output_shape(shape)
    if isinstance(out, list):
        return tuple(len(o) for o in out)
    return len(out)


def _has_spatial_output(net: Layer, shape) -> bool:
    try:
        rank = _output_rank(net, tuple(int(s) for s in shape))
    except Exception:  # shape errors are reported by the kernel function itself
        return False
    ranks = rank if isinstance(rank, tuple) else (rank,)
    return any(r > 2 for r in ranks)
