"""Networks with ``DotGeneral`` by a constant, shared by
``benchmarks/nt_reference_cases.py dot_general`` (run with Neural Tangents 0.6.5) and
``test_rules_dot_general.py`` (run with ``widelab_kernels.nt.stax``).

``cases(S)`` builds each network from a stax namespace ``S`` and yields
``(name, net, x1, x2_or_None)``; kernels are compared in NT's layout (all-pairs spatial
axes interleaved).
"""

import numpy as np


def inputs():
    rng = np.random.default_rng(19)
    img1 = rng.normal(size=(3, 2, 5, 2))
    img2 = rng.normal(size=(2, 2, 5, 2))
    seq1 = rng.normal(size=(3, 6, 2))
    return img1, img2, seq1


def _dn(other_axes, input_axes, lhs, other_batch=(), input_batch=()):
    contract = (other_axes, input_axes) if lhs else (input_axes, other_axes)
    batch = (other_batch, input_batch) if lhs else (input_batch, other_batch)
    return (contract, batch)


def nets(S):
    w = np.linspace(-1.0, 1.5, 5)
    grid = np.reshape(np.linspace(0.5, -0.7, 10), (2, 5))
    free = np.reshape(np.cos(np.arange(15.0)), (5, 3))
    per_row = np.reshape(np.sin(np.arange(6.0) + 1.0), (3, 2))
    cube = np.reshape(np.cos(0.7 * np.arange(20.0)), (5, 2, 2))
    mix = np.reshape(np.sin(0.3 * np.arange(24.0)) + 0.2, (4, 6))
    # An even number of convolutions precedes each 2-D contraction.
    return {
        "rhs_difference_gap": S.serial(
            S.Conv(8, (1, 2), padding="SAME", b_std=0.1),
            S.Relu(),
            S.Conv(8, (1, 1)),
            S.DotGeneral(rhs=np.array([1.0, -1.0]), dimension_numbers=_dn((0,), (1,), False)),
            S.Relu(),
            S.GlobalAvgPool(),
            S.Dense(1),
        ),
        "lhs_both_axes_dense": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Erf(),
            S.Conv(8, (1, 2), padding="SAME", b_std=0.2),
            S.DotGeneral(lhs=grid, dimension_numbers=_dn((0, 1), (1, 2), True)),
            S.Relu(),
            S.Dense(1),
        ),
        "rhs_transposed_both_axes": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            S.Conv(8, (1, 1)),
            S.DotGeneral(rhs=grid.T, dimension_numbers=_dn((1, 0), (1, 2), False)),
        ),
        "rhs_scalar_flat": S.serial(
            S.Conv(8, (2, 2)),
            S.DotGeneral(rhs=-1.5),
            S.Relu(),
            S.Flatten(),
            S.Dense(1),
        ),
        "rhs_width_spatial": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            S.Conv(8, (1, 1), b_std=0.3),
            S.DotGeneral(rhs=w, dimension_numbers=_dn((0,), (2,), False)),
            S.Erf(),
            S.Conv(8, (2,), padding="SAME"),
        ),
        # NT moves the channel (rhs) or batch (lhs) axis when the constant has free axes,
        # and its later layers with default axes then refuse the kernel: these cases end
        # in elementwise layers.
        "rhs_free_axis": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            S.Conv(8, (1, 1)),
            S.DotGeneral(rhs=free, dimension_numbers=_dn((0,), (2,), False)),
            S.Relu(),
        ),
        "lhs_batch_free_spatial": S.serial(
            S.Conv(8, (2, 2), padding="SAME", b_std=0.1),
            S.Erf(),
            S.Conv(8, (1, 1)),
            S.DotGeneral(lhs=per_row, dimension_numbers=_dn((), (), True, (1,), (1,))),
            S.Sin(),
        ),
        "rhs_batch_contract_free": S.serial(
            S.Conv(8, (2, 2), padding="SAME"),
            S.Relu(),
            S.Conv(8, (1, 1), b_std=0.2),
            S.DotGeneral(rhs=cube, dimension_numbers=_dn((0,), (2,), False, (1,), (1,))),
            S.Erf(),
        ),
        "lhs_1d_free": S.serial(
            S.Conv(4, (2,), padding="SAME"),
            S.Relu(),
            S.Conv(4, (1,), b_std=0.1),
            S.DotGeneral(lhs=mix, dimension_numbers=_dn((1,), (1,), True)),
            S.Gelu(),
        ),
        "lhs_1d_dense": S.serial(
            S.Conv(4, (2,)),
            S.DotGeneral(lhs=w, dimension_numbers=_dn((0,), (1,), True)),
            S.Relu(),
            S.Dense(1),
        ),
    }


def cases(S):
    img1, img2, seq1 = inputs()
    for name, net in nets(S).items():
        if "1d" in name:
            yield name, net, seq1, None
        else:
            yield name, net, img1, img2
            if "spatial" in name or "contract_free" in name:
                yield name + "|x1x1", net, img1, None
