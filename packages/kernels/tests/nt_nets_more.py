"""Networks of the newer layers shared by ``benchmarks/nt_reference_more.py`` (run with
Neural Tangents 0.6.5) and ``test_rules_*.py`` (run with widelab).

``cases(S)`` builds each network from a namespace ``S`` of stax-style constructors
(``widelab_core.layers`` or ``neural_tangents.stax``) and yields
``(name, net, x1, x2_or_None, mask_constant)``.
"""

import jax
import jax.numpy as jnp
import numpy as np


def erf_nngp(cov12, var1, var2):
    """``E[erf(u) erf(v)]`` (Williams 1997), a user-given closed form."""
    prod = (1 + 2 * var1) * (1 + 2 * var2)
    return jnp.arcsin(2 * cov12 / jnp.sqrt(prod)) * 2 / jnp.pi


def activations(S):
    return {
        "gabor": S.Gabor(),
        "rbf": S.Rbf(0.6),
        "expnorm": S.ExpNormalized(gamma=0.8, shift=-0.5),
        "expnorm_clip": S.ExpNormalized(gamma=1.3, shift=-1.0, do_clip=True),
        "monomial2": S.Monomial(2),
        "monomial3": S.Monomial(3),
        "poly": S.Polynomial([0.3, -1.0, 0.5, 0.2]),
        "elementwise_erf": S.Elementwise(jax.scipy.special.erf, erf_nngp),
    }


def unit_activations(S):
    """Hermite kernels in Neural Tangents assume unit-variance pre-activations."""
    return {"hermite2": S.Hermite(2), "hermite3": S.Hermite(3)}


def nets(S):
    out = {}
    for name, act in activations(S).items():
        for par in ("ntk", "standard"):
            out[f"mlp_{name}_{par}"] = (
                S.serial(
                    S.Dense(16, W_std=1.3, b_std=0.2, parameterization=par),
                    act,
                    S.Dense(8, W_std=0.9, b_std=0.1, parameterization=par),
                    act,
                    S.Dense(1, W_std=1.1, parameterization=par),
                ),
                "vec",
            )
    for name, act in unit_activations(S).items():
        for par in ("ntk", "standard"):
            out[f"mlp_{name}_{par}"] = (
                S.serial(
                    S.Dense(16, W_std=1.0, parameterization=par),
                    act,
                    S.Dense(8, W_std=1.0, parameterization=par),
                    act,
                    S.Dense(1, W_std=1.1, parameterization=par),
                ),
                "unit",
            )
    # One hidden layer: Neural Tangents' RectifiedMonomial is NaN on the diagonal
    # (x2=None) and hence everywhere after a second such layer.
    for degree in (0, 1, 3):
        for par in ("ntk", "standard"):
            out[f"mlp1_rectmono{degree}_{par}"] = (
                S.serial(
                    S.Dense(16, W_std=1.3, b_std=0.2, parameterization=par),
                    S.RectifiedMonomial(degree),
                    S.Dense(1, W_std=1.1, parameterization=par),
                ),
                "vec",
            )
    for scaling in ("linear", "sqrt"):
        mech = "SOFTMAX" if scaling == "linear" else "IDENTITY"
        combos = [("NONE", False, None)] + [
            (pe, val, width)
            for pe, width in (("SUM", None), ("CONCAT", 5))
            for val in (False, True)
        ]
        for pe, val, width in combos:
            out[f"att_{scaling}_{pe}_{'val' if val else 'noval'}"] = (
                attention_net(
                    S,
                    linear_scaling=scaling == "linear",
                    attention_mechanism=mech,
                    pos_emb_type=pe,
                    val_pos_emb=val,
                    n_chan_pos_emb=width,
                ),
                "seq",
            )
        out[f"att_{scaling}_decay"] = (
            attention_net(
                S,
                linear_scaling=scaling == "linear",
                attention_mechanism=mech,
                pos_emb_type="SUM",
                val_pos_emb=True,
                pos_emb_p_norm=1,
                pos_emb_decay_fn=lambda d: jnp.exp(-d / 2),
                W_pos_emb_std=0.7,
            ),
            "seq",
        )
    for mech in ("ABS", "RELU"):
        out[f"att_linear_{mech}"] = (attention_net(S, attention_mechanism=mech), "seq")
    out["cnn_gabor"] = (
        S.serial(
            S.Conv(4, (3, 3), padding="SAME", W_std=1.2, b_std=0.1),
            S.Gabor(),
            S.GlobalAvgPool(),
            S.Dense(1),
        ),
        "img",
    )
    return out


def attention_net(S, **kw):
    return S.serial(
        S.Dense(6, W_std=1.2, b_std=0.1),
        S.GlobalSelfAttention(
            5,
            4,
            3,
            2,
            W_key_std=1.1,
            W_value_std=0.9,
            W_query_std=0.8,
            W_out_std=1.2,
            b_std=0.1,
            **kw,
        ),
        S.Relu(),
        S.GlobalAvgPool(),
        S.Dense(1),
    )


MASK_CONSTANT = 7.0


def data():
    """Fixed float64 inputs; "unit" rows have ``|x|^2 / d = 1``."""
    rng = np.random.default_rng(1)
    d = {
        "vec": (rng.normal(size=(4, 5)), rng.normal(size=(3, 5))),
        "img": (rng.normal(size=(2, 4, 3, 2)), rng.normal(size=(2, 4, 3, 2))),
    }
    u1, u2 = rng.normal(size=(4, 6)), rng.normal(size=(3, 6))
    unit = lambda a: a / np.sqrt(np.mean(a**2, axis=-1, keepdims=True))
    d["unit"] = (unit(u1), unit(u2))
    s1, s2 = rng.normal(size=(3, 5, 2)), rng.normal(size=(2, 5, 2))
    d["seq"] = (s1, s2)
    s1, s2 = s1.copy(), s2.copy()
    s1[0, 3:] = MASK_CONSTANT
    s2[1, 4:] = MASK_CONSTANT
    d["seqm"] = (s1, s2)
    return d


def cases(S):
    """``(case_name, net, x1, x2_or_None, mask_constant)`` for every network and input."""
    d = data()
    for name, (net, kind) in nets(S).items():
        for dk in [kind, "seqm"] if kind == "seq" else [kind]:
            x1, x2 = d[dk]
            mc = MASK_CONSTANT if dk == "seqm" else None
            for same in (False, True):
                case = f"{name}|{dk}|{'x1x1' if same else 'x1x2'}"
                yield case, net, x1, None if same else x2, mc


def option_cases(S):
    """``(name, net, x1, x2, kwargs, get)`` exercising ``kernel_fn``'s keyword options."""
    rng = np.random.default_rng(5)
    img1, img2 = rng.normal(size=(3, 4, 3, 2)), rng.normal(size=(2, 4, 3, 2))
    vec1, vec2 = rng.normal(size=(4, 5)), rng.normal(size=(3, 5))
    cnn = S.serial(
        S.Conv(3, (2, 2), padding="SAME", W_std=1.2, b_std=0.1),
        S.Relu(),
        S.Conv(2, (2, 1), W_std=0.9),
    )
    mlp = S.serial(S.Dense(8, W_std=1.3, b_std=0.2), S.Erf(), S.Dense(2, W_std=0.8))
    two = S.serial(
        S.parallel(S.Dense(8, W_std=1.1, b_std=0.1), S.Dense(8, W_std=0.7)),
        S.FanInSum(),
        S.Relu(),
        S.Dense(1),
    )
    u1, u2 = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    get = ("nngp", "ntk", "cov1", "cov2")
    return [
        ("cnn_full_spatial", cnn, img1, img2, {"diagonal_spatial": False}, get),
        ("cnn_diag_spatial", cnn, img1, img2, {"diagonal_spatial": True}, get),
        ("cnn_full_batch", cnn, img1, img2, {"diagonal_batch": False}, get),
        ("mlp_full_batch", mlp, vec1, vec2, {"diagonal_batch": False}, get),
        ("mlp_full_batch_same", mlp, vec1, None, {"diagonal_batch": False}, ("nngp", "cov1")),
        ("two_inputs", two, [vec1, u1], [vec2, u2], {}, ("nngp", "ntk")),
        ("two_inputs_same", two, [vec1, u1], None, {}, ("nngp", "ntk")),
    ]
