"""Checks of scalar and array arguments at the public boundary of every widelab package.

Each raises one clear sentence naming the argument, the offending value and what is
allowed, so a bad argument never turns into a silently wrong number further down.
They work on concrete values only (outside ``jax.jit``).

Example:
    >>> require_int(3, "n_chains", min=1)
    3
    >>> require_int(0, "n_chains", min=1)
    Traceback (most recent call last):
    ...
    ValueError: n_chains must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["require_finite", "require_float", "require_int"]


def require_int(value, name: str, *, min: int | None = None, max: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool or float) within ``[min, max]``.

    Args:
        value: the argument.
        name: its name, for the message.
        min: smallest allowed value (None: no bound).
        max: largest allowed value (None: no bound).

    Returns:
        ``value`` as a Python int.

    Raises:
        TypeError: ``value`` is not an integer.
        ValueError: ``value`` is out of range.
    """
    allowed = "an integer" + _bounds(min, max)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    value = int(value)
    if (min is not None and value < min) or (max is not None and value > max):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def require_float(
    value,
    name: str,
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number within ``[min, max]``.

    Args:
        value: the argument (Python or NumPy scalar, or a 0-d array).
        name: its name, for the message.
        min: smallest allowed value (None: no bound).
        max: largest allowed value (None: no bound).
        min_open: exclude ``min`` itself (``value > min``).

    Returns:
        ``value`` as a Python float.

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: ``value`` is NaN, infinite or out of range.
    """
    allowed = "a finite number" + _bounds(min, max, min_open)
    try:
        if isinstance(value, bool) or np.ndim(value) != 0:
            raise TypeError
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {allowed}, got {value!r}") from None
    if (
        not math.isfinite(x)
        or (min is not None and (x <= min if min_open else x < min))
        or (max is not None and x > max)
    ):
        raise ValueError(f"{name} must be {allowed}, got {x}")
    return x


def require_finite(array, name: str) -> np.ndarray:
    """Check that an array holds no NaN or infinity (one host pass over the values).

    Args:
        array: any array-like (a JAX array is copied to the host).
        name: its name, for the message.

    Returns:
        The array as a NumPy array.

    Raises:
        ValueError: naming the first non-finite entry.
    """
    a = np.asarray(array)
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(
            f"{name} must be finite, got {a[where]} at index {where} (shape {a.shape})"
        )
    return a


def _bounds(lo, hi, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        left = "(" if lo_open else "["
        return f" in {left}{lo}, {hi}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""
