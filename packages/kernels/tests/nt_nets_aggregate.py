"""Graph networks with ``Aggregate``, shared by
``benchmarks/nt_reference_cases.py aggregate`` (run with Neural Tangents 0.6.5) and
``test_rules_aggregate.py`` (run with ``widelab_kernels.nt.stax``).

``cases(S)`` builds each network from a stax namespace ``S`` and yields
``(name, net, x1, x2_or_None, kernel_kwargs)``; ``kernel_kwargs`` holds the graphs,
``pattern=(pattern1, pattern2)``. Kernels are compared in NT's layout.
"""

import numpy as np


def _edges(rng, n, n_edges, sizes, n_pad):
    """``(n, n_edges, len(sizes), 2)`` random edges; the last ``n_pad`` of each graph
    are padding (-1)."""
    e = np.stack([rng.integers(0, s, size=(n, n_edges, 2)) for s in sizes], axis=2).astype(np.int32)
    e[:, n_edges - n_pad :] = -1
    return e


def _dense(rng, n, sizes):
    v = int(np.prod(sizes))
    a = rng.uniform(0.0, 1.0, size=(n, v, v)) * (rng.uniform(size=(n, v, v)) < 0.5)
    a = a + np.eye(v)  # self loops keep every vertex fed
    return a.reshape((n, *sizes, *sizes))


def symmetrize(p):
    """A ``to_dense`` function: the undirected version of a directed adjacency."""
    return 0.5 * (p + np.swapaxes(p, 1, 2))


def inputs():
    rng = np.random.default_rng(23)
    g1, g2 = rng.normal(size=(3, 5, 2)), rng.normal(size=(2, 5, 2))
    i1, i2 = rng.normal(size=(3, 3, 4, 2)), rng.normal(size=(2, 3, 4, 2))
    dense = (_dense(rng, 3, (5,)), _dense(rng, 2, (5,)))
    sparse = (_edges(rng, 3, 8, (5,), 2), _edges(rng, 2, 8, (5,), 1))
    dense_2d = (_dense(rng, 3, (3, 4)), _dense(rng, 2, (3, 4)))
    dense_w = (_dense(rng, 3, (4,)), _dense(rng, 2, (4,)))
    sparse_2d = (_edges(rng, 3, 9, (3, 4), 2), _edges(rng, 2, 9, (3, 4), 0))
    return dict(
        graph=(g1, g2),
        image=(i1, i2),
        dense=dense,
        sparse=sparse,
        sparse_flat=tuple(p[:, :, 0, :] for p in sparse),
        dense_2d=dense_2d,
        dense_w=dense_w,
        sparse_2d=sparse_2d,
    )


def nets(S):
    sparse = S.AggregateImplementation.SPARSE
    return {
        "dense_relu_sum": (
            S.serial(
                S.Dense(8, W_std=1.5, b_std=0.1),
                S.Aggregate(),
                S.Relu(),
                S.Aggregate(),
                S.GlobalSumPool(),
                S.Dense(1),
            ),
            "graph",
            "dense",
        ),
        "sparse_relu_sum": (
            S.serial(
                S.Dense(8, W_std=1.5, b_std=0.1),
                S.Aggregate(implementation=sparse),
                S.Relu(),
                S.Aggregate(implementation="SPARSE"),
                S.GlobalSumPool(),
                S.Dense(1),
            ),
            "graph",
            "sparse",
        ),
        "sparse_flat_erf_avg": (
            S.serial(
                S.Dense(8, b_std=0.2),
                S.Erf(),
                S.Aggregate(aggregate_axis=1, implementation="SPARSE"),
                S.Dense(8),
                S.Relu(),
                S.GlobalAvgPool(),
            ),
            "graph",
            "sparse_flat",
        ),
        "dense_to_dense_spatial": (
            S.serial(
                S.Dense(8),
                S.Aggregate(to_dense=symmetrize),
                S.Erf(),
                S.Dense(4, W_std=1.2, b_std=0.3),
            ),
            "graph",
            "dense",
        ),
        "dense_2d_flatten": (
            S.serial(
                S.Conv(8, (2, 2), padding="SAME", b_std=0.1),
                S.Aggregate(),
                S.Relu(),
                S.Conv(8, (1, 1)),
                S.Aggregate(aggregate_axis=(1, 2)),
                S.Flatten(),
                S.Dense(1),
            ),
            "image",
            "dense_2d",
        ),
        "dense_width_axis": (
            S.serial(
                S.Conv(8, (2, 2), padding="SAME"),
                S.Aggregate(aggregate_axis=2),
                S.Relu(),
                S.GlobalAvgPool(),
                S.Dense(1),
            ),
            "image",
            "dense_w",
        ),
        "sparse_2d_pool": (
            S.serial(
                S.Conv(8, (2, 2), padding="SAME"),
                S.Relu(),
                # NT 0.6.5's SPARSE kernel disagrees with its own DENSE one and its apply_fn
                # after an odd number of convolutions (its kernel's axes are reversed there).
                S.Conv(8, (1, 1)),
                S.Aggregate(aggregate_axis=(1, 2), implementation="SPARSE"),
                S.GlobalSumPool(),
            ),
            "image",
            "sparse_2d",
        ),
    }


def cases(S):
    data = inputs()
    for name, (net, x, p) in nets(S).items():
        (x1, x2), (p1, p2) = data[x], data[p]
        yield name, net, x1, x2, {"pattern": (p1, p2)}
        if name in ("dense_relu_sum", "sparse_relu_sum", "dense_2d_flatten"):
            yield name + "|x1x1", net, x1, None, {"pattern": (p1, p1)}
