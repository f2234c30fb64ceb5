"""Networks shared by the Neural Tangents reference generator and test_nt_reference.py.

``nets(S, widelab)`` builds every network from a namespace ``S`` of stax-style layer
constructors (``widelab_core.layers`` or ``neural_tangents.stax``); ``widelab`` only
switches the Dropout convention (drop rate here, keep rate in Neural Tangents).
"""

import numpy as np


def activations(S):
    return {
        "relu": S.Relu(),
        "leaky": S.LeakyRelu(0.1),
        "abrelu": S.ABRelu(-0.3, 1.2),
        "abs": S.Abs(),
        "erf": S.Erf(),
        "erf_abc": S.Erf(0.5, 0.7, 0.2),
        "gelu": S.Gelu(),
        "sin": S.Sin(1.2, 0.8, 0.3),
        "cos": S.Cos(),
        "gaussian": S.Gaussian(1.0, -0.8),
        "exp": S.Exp(0.5, 0.3),
        "sign": S.Sign(),
    }


def nets(S, widelab):
    drop = (lambda r: S.Dropout(r)) if widelab else (lambda r: S.Dropout(1 - r))
    out = {}
    for name, act in activations(S).items():
        for par in ("ntk", "standard"):
            out[f"mlp_{name}_{par}"] = (
                S.serial(
                    S.Dense(64, W_std=1.3, b_std=0.2, parameterization=par),
                    act,
                    S.Dense(8, W_std=0.9, b_std=0.1, parameterization=par),
                    act,
                    S.Dense(1, W_std=1.1, parameterization=par),
                ),
                "vec",
            )
    out["cnn_diag"] = (
        S.serial(
            S.Conv(8, (3, 3), padding="SAME", W_std=1.3, b_std=0.2),
            S.Relu(),
            S.Conv(8, (2, 2), strides=(2, 2), padding="VALID", W_std=1.1, b_std=0.1),
            S.Erf(),
            S.Conv(
                8, (3, 1), padding="CIRCULAR", W_std=1.2, b_std=0.3, parameterization="standard"
            ),
            S.Relu(),
            S.Flatten(),
            S.Dense(1, W_std=1.0, b_std=0.1),
        ),
        "img",
    )
    out["cnn_pool"] = (
        S.serial(
            S.Conv(8, (3, 3), padding="SAME", W_std=1.3, b_std=0.2),
            S.Relu(),
            S.AvgPool((2, 2), strides=(2, 2)),
            S.Conv(8, (3, 3), padding="CIRCULAR", W_std=1.2),
            S.Gelu(),
            S.SumPool((2, 1), strides=(1, 1), padding="SAME"),
            S.Conv(8, (1, 1)),
            S.Relu(),
            S.GlobalAvgPool(),
            S.Dense(1),
        ),
        "img",
    )
    out["cnn_1d_gsum"] = (
        S.serial(
            S.Conv(8, (2,), padding="VALID", W_std=1.3, b_std=0.2, parameterization="standard"),
            S.Abs(),
            S.Conv(8, (3,), strides=(2,), padding="SAME"),
            S.GlobalSumPool(),
            S.Dense(1, parameterization="standard", b_std=0.2),
        ),
        "seq",
    )
    out["layernorm"] = (
        S.serial(S.Dense(16, W_std=1.5, b_std=0.5), S.LayerNorm(), S.Relu(), S.Dense(1)),
        "vec",
    )
    out["layernorm_spatial"] = (
        S.serial(
            S.Conv(8, (2, 2), padding="SAME", b_std=0.5),
            S.LayerNorm(axis=(1, 2, 3)),
            S.Relu(),
            S.Flatten(),
            S.Dense(1),
        ),
        "img",
    )
    out["dropout"] = (
        S.serial(S.Dense(16, W_std=1.5, b_std=0.5), S.Relu(), drop(0.3), S.Dense(1, b_std=0.1)),
        "vec",
    )
    out["branches"] = (
        S.serial(
            S.Dense(16, b_std=0.1),
            S.FanOut(3),
            S.parallel(
                S.serial(S.Relu(), S.Dense(16)),
                S.serial(S.Erf(), S.Dense(16, b_std=0.2)),
                S.Dense(16, W_std=2.0),
            ),
            S.FanInSum(),
            S.Dense(16),
            S.FanOut(2),
            S.parallel(S.serial(S.Sin(), S.Dense(16)), S.Identity()),
            S.FanInProd(),
            S.Dense(16, b_std=0.3),
            S.FanOut(2),
            S.parallel(S.Dense(4), S.Dense(12, W_std=0.5)),
            S.FanInConcat(),
            S.Dense(8),
            S.Relu(),
            S.Dense(1),
        ),
        "vec",
    )
    out["repeat"] = (
        S.serial(
            S.Dense(8, b_std=0.1), S.repeat(S.serial(S.Relu(), S.Dense(8, W_std=1.4, b_std=0.1)), 3)
        ),
        "vec",
    )
    for mech in ("SOFTMAX", "IDENTITY"):
        for pe in ("NONE", "SUM", "CONCAT"):
            out[f"attention_{mech}_{pe}"] = (
                S.serial(
                    S.Dense(8, b_std=0.1),
                    S.GlobalSelfAttention(
                        8,
                        8,
                        8,
                        2,
                        linear_scaling=True,
                        W_key_std=1.1,
                        W_value_std=1.2,
                        W_query_std=0.9,
                        W_out_std=1.3,
                        b_std=0.2,
                        attention_mechanism=mech,
                        pos_emb_type=pe,
                        W_pos_emb_std=0.7,
                        val_pos_emb=(pe == "CONCAT"),
                        n_chan_pos_emb=(5 if pe == "CONCAT" else None),
                    ),
                    S.Relu(),
                    S.GlobalAvgPool(),
                    S.Dense(1),
                ),
                "seq",
            )
    out["attention_layernorm"] = (
        S.serial(
            S.Dense(8, b_std=0.1),
            S.GlobalSelfAttention(8, 8, 8, 1),
            S.LayerNorm(),
            S.Relu(),
            S.GlobalAvgPool(),
            S.Dense(1),
        ),
        "seq",
    )
    return out


MASK_CONSTANT = 7.0


def data():
    """Fixed float64 inputs; "seqm" has padded (masked) positions."""
    rng = np.random.default_rng(0)
    d = {
        "img": (rng.normal(size=(3, 6, 4, 2)), rng.normal(size=(2, 6, 4, 2))),
        "vec": (rng.normal(size=(4, 5)), rng.normal(size=(3, 5))),
        "seq": (rng.normal(size=(3, 5, 3)), rng.normal(size=(2, 5, 3))),
    }
    s1, s2 = (a.copy() for a in d["seq"])
    s1[0, 3:] = MASK_CONSTANT
    s2[1, 4:] = MASK_CONSTANT
    d["seqm"] = (s1, s2)
    return d


def cases(S, widelab):
    """``(case_name, net, x1, x2_or_None, mask_constant)`` for every network and input."""
    d = data()
    for name, (net, kind) in nets(S, widelab).items():
        kinds = [kind, "seqm"] if name.startswith("attention") else [kind]
        for dk in kinds:
            x1, x2 = d[dk]
            mc = MASK_CONSTANT if dk == "seqm" else None
            for same in (False, True):
                yield f"{name}|{dk}|{'x1x1' if same else 'x1x2'}", net, x1, None if same else x2, mc
