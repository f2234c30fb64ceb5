"""Report section: sampling, KL and MMD on real images (digits).

Quick mode runs no sampler and no MMD study (compilation dominates their cost; the
sampling section has its own MMD study): only the KL study, at small sizes.
"""

from __future__ import annotations

import time

from widelab_core.command import ReportContext, ReportSection

from .studies import HEADER


def image_report(ctx: ReportContext) -> ReportSection:
    """ESS vs width on digits (10 outputs; full mode), KL(prior || posterior), MMD."""
    import jax

    from .scale_studies import image_ess_vs_width, image_mmd_vs_width, kl_slope, kl_vs_width

    section = ReportSection(title="bayes: real images (digits, 10 outputs)")
    t0 = time.perf_counter()
    k1, k2, k3 = jax.random.split(jax.random.key(ctx.seed), 3)
    if ctx.quick:
        kl_widths, kl_draws = [64, 256], 200
    else:
        kl_widths, kl_draws = [16, 64, 256, 1024], 2000
        n_data, n_test = 128, 16
        runs = image_ess_vs_width(
            k1,
            [64, 256, 1024],
            ("collapsed-ghmc", "repriorised-ghmc", "plain-ghmc", "plain-nuts"),
            ("fcn", "resnet"),
            n_data=n_data,
            n_test=n_test,
            chains=4,
            num_warmup=300,
            num_samples=500,
            progress=ctx.bar,
        )
        section.text(
            f"Posterior of ReLU networks on {n_data} digits (scikit-learn's bundled 8x8 "
            "images, inputs scaled to unit mean square), Gaussian likelihood on centred "
            "one-hot targets (10 outputs), noise std 0.3. ESS is the smallest bulk ESS over "
            f"8 random projections of the {n_test} x 10 test outputs; runs with max R-hat "
            "above 1.05 have not mixed and their ESS is not trustworthy."
        )
        section.table(["network"] + HEADER, [[n] + r.row() for n, r in runs], "Sampler runs")
    pts = kl_vs_width(k2, kl_widths, num_draws=kl_draws)
    section.table(
        ["width", "KL", "s.e.", "width x KL"],
        [[p.width, round(p.kl, 4), round(p.se, 4), round(p.width * p.kl, 2)] for p in pts],
        f"KL(prior || repriorised posterior) of the hidden weights, 8 digits, 10 outputs, "
        f"{kl_draws} prior draws per width (bootstrap s.e.); it falls like 1/width",
    )
    section.metric(
        "slope of log KL vs log width (1/width: -1)",
        round(kl_slope(pts), 2),
        unit="1",
        better="neither",
    )
    if not ctx.quick:
        rows = image_mmd_vs_width(
            k3, [4, 16, 64, 256], (1, 2), num_samples=300, repeats=5, progress=ctx.bar
        )
        section.table(
            ["depth", "width", "MMD^2", "s.e."],
            [[d, w, round(m, 5), round(s, 5)] for d, w, m, s in rows],
            "MMD^2 to the NNGP at 5 digits, 300 draws, mean and s.e. over 5 repeats "
            "(Matthews et al. 2018)",
        )
    section.metric(
        "image section seconds", round(time.perf_counter() - t0, 1), summary=False, unit="s"
    )
    return section
