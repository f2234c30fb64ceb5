"""Predictions of infinitely wide networks: GP inference and gradient-descent training.

Conventions follow Neural Tangents' ``predict`` module: the MSE loss is
``||f(X) - Y||^2 / (2 Y.size)``, so continuous-time gradient flow with learning rate
``eta`` gives ``f_t(X) = Y + exp(-eta t Theta / Y.size) (f_0(X) - Y)`` (Lee et al. 2019,
"Wide neural networks of any depth evolve as linear models", eq. 9-11). Kernel
matrices are ``(n, n)``; targets ``(n, k)``. Factorisations are computed once per
training kernel and cached in the returned objects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl


def _check_train(k_train_train, y_train, where: str):
    k = jnp.asarray(k_train_train)
    y = jnp.asarray(y_train)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{where}: k_train_train must be a square matrix, got shape {k.shape}")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != k.shape[0]:
        raise ValueError(
            f"{where}: y_train must be (n_train, k) with n_train={k.shape[0]}, got {y.shape}"
        )
    return k, y


def _regularize(k, diag_reg, scale: bool = True):
    """``k + diag_reg * mean(diag k) * I`` (Neural Tangents' ``diag_reg_absolute_scale=False``)."""
    n = k.shape[0]
    factor = jnp.trace(k) / n if scale else 1.0
    return k + diag_reg * factor * jnp.eye(n, dtype=k.dtype)


@dataclasses.dataclass(frozen=True)
class GPPosterior:
    """Exact Gaussian-process regression with a cached Cholesky factor.

    Attributes:
        cho: lower Cholesky factor of the regularised training kernel.
        alpha: ``K^{-1} Y``.
    """

    cho: jax.Array
    alpha: jax.Array

    def __call__(self, k_test_train, k_test_test=None):
        """Posterior mean and (optionally) covariance at test points.

        Args:
            k_test_train: ``(n_test, n_train)`` kernel between test and training points.
            k_test_test: ``(n_test, n_test)`` prior covariance of the test points, or None.

        Returns:
            ``(mean, cov)``: mean ``(n_test, k)`` (Rasmussen & Williams 2006, eq. 2.25) and
            ``cov = K_** - K_*X K^{-1} K_X*`` (eq. 2.26), ``None`` without ``k_test_test``.
        """
        kt = jnp.asarray(k_test_train)
        if kt.ndim != 2 or kt.shape[1] != self.cho.shape[0]:
            raise ValueError(
                f"GP posterior: k_test_train must be (n_test, {self.cho.shape[0]}), got {kt.shape}"
            )
        mean = kt @ self.alpha
        if k_test_test is None:
            return mean, None
        v = jsl.solve_triangular(self.cho, kt.T, lower=True)
        return mean, jnp.asarray(k_test_test) - v.T @ v


def gp_inference(k_train_train, y_train, *, diag_reg: float = 0.0) -> GPPosterior:
    """Condition a GP with prior covariance ``k`` on noisy observations ``y_train``.

    Args:
        k_train_train: ``(n, n)`` prior covariance (NNGP for Bayesian inference).
        y_train: ``(n, k)`` targets.
        diag_reg: ridge ``diag_reg * mean(diag K)`` added to the diagonal.

    Returns:
        A :class:`GPPosterior` (callable on ``k_test_train[, k_test_test]``).

    Raises:
        ValueError: shapes do not fit.

    Example:
        >>> import jax.numpy as jnp
        >>> k = jnp.array([[2.0, 1.0], [1.0, 2.0]])
        >>> gp = gp_inference(k, jnp.array([[1.0], [0.0]]), diag_reg=1e-6)
        >>> [round(float(v), 3) for v in gp(k)[0][:, 0]]
        [1.0, 0.0]
    """
    k, y = _check_train(k_train_train, y_train, "gp_inference")
    cho = jnp.linalg.cholesky(_regularize(k, diag_reg))
    alpha = jsl.cho_solve((cho, True), y)
    return GPPosterior(cho, alpha)


def max_learning_rate(ntk_train_train, y_train_size: int | None = None, momentum: float = 0.0):
    """Largest stable step of gradient descent on the MSE loss ``||f - y||^2 / (2 Y.size)``.

    ``eta_max = 2 (1 + momentum) Y.size / lambda_max(Theta)`` (Lee et al. 2019, Sec. 2.4;
    Neural Tangents' convention).

    Args:
        ntk_train_train: ``(n, n)`` NTK on the training set.
        y_train_size: ``Y.size`` (defaults to ``n``, i.e. one output).
        momentum: heavy-ball momentum.

    Returns:
        The critical learning rate (a scalar array).
    """
    k = jnp.asarray(ntk_train_train)
    size = k.shape[0] if y_train_size is None else y_train_size
    lam = jnp.linalg.eigvalsh(k)[-1]
    return 2.0 * (1.0 + momentum) * size / lam


@dataclasses.dataclass(frozen=True)
class MSEDynamics:
    """Gradient flow on the MSE loss, solved in the eigenbasis of the training NTK.

    Attributes:
        evals: eigenvalues of the (regularised) training NTK.
        evecs: its eigenvectors.
        y_train: training targets ``(n, k)``.
        rate: ``learning_rate / Y.size``.
    """

    evals: jax.Array
    evecs: jax.Array
    y_train: jax.Array
    rate: float

    def _fn(self, t, g: Callable) -> jax.Array:
        """``V g(lambda) V^T`` with ``g`` applied to the eigenvalues at time ``t``."""
        return (self.evecs * g(self.evals)[None]) @ self.evecs.T

    def __call__(self, t=None, fx_train_0=0.0, fx_test_0=None, k_test_train=None):
        """Outputs at time ``t`` (``None``: ``t = inf``).

        Args:
            t: training time in units of the learning rate (scalar); ``None`` = infinity.
            fx_train_0: initial outputs on the training set (0 for the ensemble mean).
            fx_test_0: initial outputs on the test set (0 if ``k_test_train`` given).
            k_test_train: ``(n_test, n_train)`` NTK between test and training points.

        Returns:
            ``fx_train_t`` or ``(fx_train_t, fx_test_t)`` when ``k_test_train`` is given.
            ``f_t(X) = Y + e^{-eta t Theta} (f_0 - Y)``,
            ``f_t(x) = f_0(x) + Theta_xX Theta^{-1} (I - e^{-eta t Theta}) (Y - f_0(X))``
            (Lee et al. 2019, eq. 9-11).
        """
        y = self.y_train
        f0 = jnp.broadcast_to(jnp.asarray(fx_train_0, y.dtype), y.shape)
        if t is None:
            decay = lambda lam: jnp.zeros_like(lam)
            inv_part = lambda lam: 1.0 / lam
        else:
            decay = lambda lam: jnp.exp(-self.rate * t * lam)
            inv_part = lambda lam: -jnp.expm1(-self.rate * t * lam) / lam
        fx_train = y + self._fn(t, decay) @ (f0 - y)
        if k_test_train is None:
            return fx_train
        kt = jnp.asarray(k_test_train)
        ft0 = 0.0 if fx_test_0 is None else fx_test_0
        fx_test = ft0 + kt @ (self._fn(t, inv_part) @ (y - f0))
        return fx_train, fx_test


def gradient_descent_mse(
    ntk_train_train, y_train, *, learning_rate: float = 1.0, diag_reg: float = 0.0
) -> MSEDynamics:
    """Closed-form gradient flow of a linearised (infinitely wide) network on MSE.

    Args:
        ntk_train_train: ``(n, n)`` NTK on the training set.
        y_train: ``(n, k)`` targets.
        learning_rate: ``eta``; times are in units of it.
        diag_reg: ridge ``diag_reg * mean(diag Theta)`` added to the diagonal.

    Returns:
        :class:`MSEDynamics`, callable as ``dyn(t, fx_train_0, fx_test_0, k_test_train)``
        with the eigendecomposition cached.

    Raises:
        ValueError: shapes do not fit.
    """
    k, y = _check_train(ntk_train_train, y_train, "gradient_descent_mse")
    evals, evecs = jnp.linalg.eigh(_regularize(k, diag_reg))
    return MSEDynamics(evals, evecs, y, learning_rate / y.size)


@dataclasses.dataclass(frozen=True)
class EnsemblePrediction:
    """Mean and covariance of an infinite ensemble trained by gradient flow on MSE.

    Attributes:
        nngp_train: ``(n, n)`` NNGP on the training set.
        dynamics: the NTK's :class:`MSEDynamics`.
    """

    nngp_train: jax.Array
    dynamics: MSEDynamics

    def __call__(self, t, nngp_test_train, ntk_test_train, nngp_test_test=None):
        """``(mean, cov)`` at time ``t`` (``None``: infinity) on test points.

        With ``A_t = Theta_xX Theta^{-1} (I - e^{-eta t Theta})``:
        mean ``= A_t Y``; cov ``= K_xx - A_t K_Xx - K_xX A_t^T + A_t K_XX A_t^T``
        (Lee et al. 2019, eq. 15-16). ``cov`` is ``None`` without ``nngp_test_test``.
        """
        d = self.dynamics
        if t is None:
            g = lambda lam: 1.0 / lam
        else:
            g = lambda lam: -jnp.expm1(-d.rate * t * lam) / lam
        a = jnp.asarray(ntk_test_train) @ d._fn(t, g)
        mean = a @ d.y_train
        if nngp_test_test is None:
            return mean, None
        kx = jnp.asarray(nngp_test_train)
        cov = jnp.asarray(nngp_test_test) - a @ kx.T - kx @ a.T + a @ self.nngp_train @ a.T
        return mean, cov


def gradient_descent_mse_ensemble(
    nngp_train_train,
    ntk_train_train,
    y_train,
    *,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
) -> EnsemblePrediction:
    """Infinite ensemble of wide networks trained on MSE (Lee et al. 2019, eq. 15-16).

    Args:
        nngp_train_train: ``(n, n)`` NNGP on the training set.
        ntk_train_train: ``(n, n)`` NTK on the training set.
        y_train: ``(n, k)`` targets.
        learning_rate: ``eta``.
        diag_reg: ridge added to the NTK (relative to its mean diagonal).

    Returns:
        :class:`EnsemblePrediction` callable as ``pred(t, nngp_test_train,
        ntk_test_train, nngp_test_test=None) -> (mean, cov)``.
    """
    dyn = gradient_descent_mse(
        ntk_train_train, y_train, learning_rate=learning_rate, diag_reg=diag_reg
    )
    return EnsemblePrediction(jnp.asarray(nngp_train_train), dyn)


def cross_entropy_loss_grad(fx: jax.Array, y: jax.Array) -> jax.Array:
    """Gradient in ``fx`` of the mean softmax cross-entropy
    ``L = -sum_i y_i . log softmax(fx_i) / n``: ``(softmax(fx) - y) / n``."""
    return (jax.nn.softmax(fx, axis=-1) - y) / fx.shape[0]


def mse_loss_grad(fx: jax.Array, y: jax.Array) -> jax.Array:
    """Gradient in ``fx`` of ``L = ||fx - y||^2 / (2 y.size)``: ``(fx - y) / y.size``."""
    return (fx - y) / y.size


def gradient_descent(
    ntk_train_train,
    y_train,
    *,
    learning_rate: float = 1.0,
    loss_grad: Callable[[jax.Array, jax.Array], jax.Array] = cross_entropy_loss_grad,
    n_steps: int = 200,
):
    """Gradient flow of a linearised network on any loss, integrated by RK4.

    ``df(X)/dt = -eta Theta dL/df(X)`` and ``df(x)/dt = -eta Theta_xX dL/df(X)``
    with ``L`` the training loss (default mean softmax cross-entropy)
    (Lee et al. 2019, eq. 6).

    Args:
        ntk_train_train: ``(n, n)`` NTK on the training set.
        y_train: ``(n, k)`` targets (one-hot for cross-entropy).
        learning_rate: ``eta``.
        loss_grad: ``g(fx, y) -> dL/dfx`` for the whole ``(n, k)`` training output
            (:func:`cross_entropy_loss_grad`, :func:`mse_loss_grad` or your own).
        n_steps: RK4 steps from 0 to ``t``.

    Returns:
        ``predict(t, fx_train_0, fx_test_0=None, ntk_test_train=None)`` giving
        ``fx_train_t`` or ``(fx_train_t, fx_test_t)``.
    """
    k, y = _check_train(ntk_train_train, y_train, "gradient_descent")

    def predict(t, fx_train_0, fx_test_0=None, ntk_test_train=None):
        f0 = jnp.broadcast_to(jnp.asarray(fx_train_0, y.dtype), y.shape)
        kt = None if ntk_test_train is None else jnp.asarray(ntk_test_train)
        ft0 = None
        if kt is not None:
            ft0 = jnp.zeros((kt.shape[0], y.shape[1]), y.dtype)
            if fx_test_0 is not None:
                ft0 = ft0 + fx_test_0
        h = jnp.asarray(t, y.dtype) / n_steps

        def rhs(state: Any):
            ftr, fte = state
            g = loss_grad(ftr, y) * (-learning_rate)
            return k @ g, (None if kt is None else kt @ g)

        def add(s, d, c):
            return (s[0] + c * d[0], None if s[1] is None else s[1] + c * d[1])

        def step(state, _):
            k1 = rhs(state)
            k2 = rhs(add(state, k1, h / 2))
            k3 = rhs(add(state, k2, h / 2))
            k4 = rhs(add(state, k3, h))
            inc = add(add(add(k1, k2, 2.0), k3, 2.0), k4, 1.0)
            return add(state, inc, h / 6), None

        (ftr, fte), _ = jax.lax.scan(step, (f0, ft0), None, length=n_steps)
        return ftr if kt is None else (ftr, fte)

    return predict
