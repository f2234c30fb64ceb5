"""How often float32 two-stage LinUCB leaves the float64 NumPy reference's decisions.

In float64 :func:`widelab_recsys.run_two_stage` makes exactly the decisions of
:func:`widelab_recsys.two_stage_reference`; in float32 (the default) rounding can flip a
decision when two UCBs are nearly tied, after which the runs follow different paths.
For each seed this prints the first round where the float32 run differs from the
reference and the total regret of both runs (``make_instance`` draws unit-norm arms, so
in exact arithmetic every ranker UCB ties at round 1 and float32 norms decide):

    uv run python packages/recsys/benchmarks/bandit_float32_drift.py --seeds 8 --rounds 300
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--arms", type=int, default=40)
    ap.add_argument("--pools", type=int, default=4)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    from widelab_recsys import make_instance, run_two_stage, two_stage_reference

    same = 0
    for seed in range(args.seeds):
        key = jax.random.key(seed)
        inst = make_instance(key, n_arms=args.arms, dim=8, n_pools=args.pools, nominator_dim=4)
        noise = 0.1 * np.asarray(jax.random.normal(jax.random.key(1000 + seed), (args.rounds,)))
        for sync in (False, True):
            ref, ref_regret = two_stage_reference(
                *(np.asarray(a, np.float64) for a in inst[:2]),
                np.asarray(inst.pools),
                np.asarray(inst.projections, np.float64),
                noise,
                sync=sync,
            )
            arms, regret = run_two_stage(inst, jnp.asarray(noise, jnp.float32), sync=sync)
            arms = np.asarray(arms)
            diff = np.flatnonzero(arms != ref)
            first = int(diff[0]) if diff.size else -1
            same += diff.size == 0
            print(
                f"seed {seed} sync={sync!s:5}: first differing round "
                f"{first if first >= 0 else 'none':>5}; total regret float32 "
                f"{float(np.sum(regret)):.3f}, float64 reference {float(np.sum(ref_regret)):.3f}"
            )
    print(f"identical decision sequences: {same} of {2 * args.seeds} runs")


if __name__ == "__main__":
    main()
