"""The ``widelab lm`` command (make-kg, train, study, evaluate, detect, self-train) and
report hook."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from widelab_core.cliargs import (
    check_output_file,
    float_list,
    int_list,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
)
from widelab_core.command import Command, ReportContext, ReportSection, atomic_write


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lm_cmd", required=True)
    p = sub.add_parser("make-kg", help="draw a synthetic knowledge graph, write TSV")
    p.add_argument("--entities", type=positive_int, default=200)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--homonyms", type=probability, default=0.0, help="share of persons renamed")
    p.add_argument(
        "--rules", type=probability, default=0.0, help="share of symmetric facts derived"
    )
    p.add_argument("--out", required=True, help="output .tsv file")

    p = sub.add_parser("train", help="train an LM on a KG (resumes from --out)")
    p.add_argument("--kg", help="TSV or .nt triples file (default: synthetic)")
    p.add_argument("--entities", type=positive_int, default=200)
    p.add_argument("--unseen-fraction", type=probability, default=0.1)
    p.add_argument("--split-by", choices=["pair", "object", "derived"], default="pair")
    p.add_argument("--homonyms", type=probability, default=0.0, help="synthetic KG only")
    p.add_argument("--rules", type=probability, default=0.0, help="synthetic KG only")
    p.add_argument("--d-model", type=positive_int, default=128)
    p.add_argument("--layers", type=positive_int, default=2)
    p.add_argument("--heads", type=positive_int, default=4)
    p.add_argument("--seq-len", type=positive_int, default=64)
    p.add_argument("--dropout", type=probability, default=0.0)
    p.add_argument("--steps", type=positive_int, default=500)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--lr", type=positive_float, default=3e-3)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument(
        "--checkpoint-every",
        type=nonnegative_int,
        default=100,
        help="steps between checkpoints (0: only at the end)",
    )
    p.add_argument("--no-resume", action="store_true", help="start over in --out")
    p.add_argument(
        "--data-parallel", action="store_true", help="split each batch over all local devices"
    )
    p.add_argument(
        "--shard-params",
        action="store_true",
        help="split parameters and optimizer state over the devices (with --data-parallel "
        "or the multi-host flags) instead of replicating them",
    )
    p.add_argument("--bf16", action="store_true", help="bfloat16 compute, float32 weights")
    p.add_argument("--extend", action="store_true", help="allow more --steps than the run recorded")
    p.add_argument(
        "--log-every", type=positive_int, default=10, help="steps between metrics.jsonl lines"
    )
    g = p.add_argument_group(
        "multi-host",
        "run the same command on every process; each batch is split over all processes' "
        "devices and process 0 alone writes --out (a folder every process can read)",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-host job JAX detects (Slurm, Open MPI, Kubernetes, Cloud TPU; "
        "JAX_COORDINATOR_ADDRESS)",
    )
    g.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    g.add_argument("--num-processes", type=positive_int, help="processes in the job")
    g.add_argument("--process-id", type=nonnegative_int, help="this process's index")
    p.add_argument("--out", required=True, help="run folder")

    p = sub.add_parser(
        "study",
        help="rate against model size and epochs: one resumable run per grid cell",
    )
    p.add_argument("--kg", help="TSV or .nt triples file (default: synthetic)")
    p.add_argument("--entities", type=positive_int, default=60)
    p.add_argument("--unseen-fraction", type=probability, default=0.1)
    p.add_argument("--seed", type=nonnegative_int, default=0, help="graph and split seed")
    p.add_argument("--sizes", type=int_list(positive_int), default=[16, 32], help="d_model list")
    p.add_argument("--layers", type=positive_int, default=1)
    p.add_argument("--head-dim", type=positive_int, default=16)
    p.add_argument("--seq-len", type=positive_int, default=48)
    p.add_argument(
        "--epochs", type=float_list(positive_float), default=[4.0, 16.0], help="epochs per cell"
    )
    p.add_argument(
        "--fractions",
        type=float_list(positive_float),
        default=[1.0],
        help="shares of the training queries (each in (0, 1])",
    )
    p.add_argument(
        "--seeds", type=int_list(nonnegative_int), default=[0], help="training replicates"
    )
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--lr", type=positive_float, default=1e-2)
    p.add_argument("--warmup", type=positive_int, default=10)
    p.add_argument("--max-queries", type=positive_int, help="evaluate at most this many queries")
    p.add_argument("--out", required=True, help="study folder (one sub-folder per cell)")

    p = sub.add_parser("evaluate", help="hallucination rates of a trained run")
    p.add_argument("--run", required=True)
    p.add_argument("--sampled", action="store_true", help="sample instead of greedy")
    p.add_argument("--samples", type=positive_int, default=4)
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument(
        "--max-new", type=positive_int, help="most generated tokens (default: longest object + 3)"
    )

    p = sub.add_parser("detect", help="train and score a hallucination detector")
    p.add_argument("--run", required=True)
    p.add_argument("--task", choices=["sentence", "token"], default="sentence")
    p.add_argument("--mode", choices=["frozen", "finetune", "scratch"], default="frozen")
    p.add_argument("--width", type=positive_int, default=64)
    p.add_argument("--steps", type=positive_int, default=300)
    p.add_argument("--samples", type=positive_int, default=4)
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument(
        "--max-new", type=positive_int, help="most generated tokens (default: longest object + 3)"
    )

    p = sub.add_parser("self-train", help="ReST-EM with the KG as verifier")
    p.add_argument("--run", required=True)
    p.add_argument("--iterations", type=positive_int, default=3)
    p.add_argument("--samples", type=positive_int, default=8)
    p.add_argument(
        "--cap", type=positive_int, default=2, help="most verified answers kept per query"
    )
    p.add_argument(
        "--top-k", type=nonnegative_int, default=0, help="E-step top-k sampling (0: off)"
    )
    p.add_argument("--top-p", type=probability, default=1.0, help="E-step nucleus mass (1: off)")
    p.add_argument("--steps", type=positive_int, default=100)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument(
        "--max-new", type=positive_int, help="most generated tokens (default: longest object + 3)"
    )

    from .extraction.cli import configure as configure_extract

    configure_extract(
        sub.add_parser("extract", help="human-validated information extraction from documents")
    )


def _run(args: argparse.Namespace) -> int:
    from .train import TrainingInterrupted

    try:
        return _dispatch(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"widelab lm {args.lm_cmd}: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(
            f"widelab lm {args.lm_cmd}: interrupted; checkpoint of step {e.step} saved in "
            f"{args.out} (run the same command to resume)",
            file=sys.stderr,
        )
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.lm_cmd == "extract":
        from .extraction.cli import run as run_extract

        return run_extract(args)

    import jax

    from .corpus import FactStream, Tokenizer, encode_kg
    from .hallucination import decode_budget, generate, hallucination_rate
    from .kg import make_kg, split_kg
    from .model import LMConfig, param_counts
    from .runs import (
        check_outputs,
        file_digest,
        kg_from_file_or_synthetic,
        load_run,
        resume_run,
        save_run,
    )
    from .train import TrainConfig, train

    if args.lm_cmd == "make-kg":
        check_output_file(args.out, "--out")
        kg = make_kg(
            args.entities, seed=args.seed, homonym_share=args.homonyms, rule_share=args.rules
        )
        atomic_write(Path(args.out), kg.to_tsv())
        print(f"wrote {len(kg)} triples, {len(kg.queries())} queries to {args.out}")
        return 0
    if args.lm_cmd == "train":
        devices = _train_devices(args)
        writer = jax.process_index() == 0
        check_outputs(args.out, [args.kg])
        kg = kg_from_file_or_synthetic(args.kg, args.entities, args.seed, args.homonyms, args.rules)
        split = split_kg(kg, args.unseen_fraction, by=args.split_by, seed=args.seed)
        tok = Tokenizer.fit(kg.triples)
        cfg = LMConfig(
            tok.vocab_size,
            args.d_model,
            args.layers,
            args.heads,
            args.seq_len,
            dropout=args.dropout,
        )
        tc = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
            log_every=args.log_every,
            compute_dtype="bfloat16" if args.bf16 else "float32",
        )
        out = Path(args.out)
        data = {
            "kg": str(Path(args.kg).resolve()) if args.kg else None,
            "kg_sha256": file_digest(args.kg) if args.kg else None,
            "entities": None if args.kg else args.entities,
            "homonyms": None if args.kg else args.homonyms,
            "rules": None if args.kg else args.rules,
            "unseen_fraction": args.unseen_fraction,
            "split_by": args.split_by,
        }
        # every process checks the recorded settings; only process 0 writes the folder
        if args.no_resume or not (out / "run.json").exists():
            if writer:
                save_run(out, cfg, tc, tok, split, data)
        else:
            resume_run(out, cfg, tc, data, extend=args.extend, write=writer)
        stream = FactStream(encode_kg(tok, split.train), cfg.seq_len, tc.batch_size, tc.seed)
        where = ""
        if jax.process_count() > 1:
            where = f"process {jax.process_index()} of {jax.process_count()}; "
        where += f"{len(devices or [0])} devices; "
        if args.shard_params:
            where += "parameters sharded; "
        print(
            f"{where}{len(split.train)} training facts; "
            f"{param_counts(cfg)['non_embedding']} non-embedding parameters"
        )
        res = train(
            cfg,
            tc,
            stream,
            run_dir=out,
            resume=not args.no_resume,
            progress=writer and sys.stderr.isatty(),
            devices=devices,
            shard_params=args.shard_params,
        )
        last = res.losses[-1] if res.losses else float("nan")
        print(
            f"step {res.state.step}: loss {last:.4f}, {res.tokens_per_s:.0f} tokens/s, "
            f"MFU {res.mfu:.2%}"
        )
        return 0
    if args.lm_cmd == "study":
        return _study(args)
    run = load_run(args.run)
    key = jax.random.key(args.seed)
    if args.max_new is not None and args.max_new < 1:
        raise ValueError(f"--max-new must be >= 1, got {args.max_new}")
    max_new = args.max_new if args.max_new is not None else decode_budget(run.tok, run.split.full)
    if args.lm_cmd == "evaluate":
        out = {}
        for name, qs in (("seen", run.split.seen), ("unseen", run.split.unseen)):
            if qs:
                est, _ = hallucination_rate(
                    run.cfg,
                    run.params,
                    run.tok,
                    run.split.full,
                    list(qs),
                    greedy=not args.sampled,
                    n_samples=args.samples if args.sampled else 1,
                    temperature=args.temperature,
                    key=key,
                    max_new=max_new,
                )
                out[name] = est.as_dict()
        print(json.dumps(out, indent=2))
        return 0
    if args.lm_cmd == "detect":
        from .detectors import DetectorConfig, evaluate_detector, split_generations, train_detector

        gen = generate(
            run.cfg,
            run.params,
            run.tok,
            list(run.split.seen),
            greedy=False,
            n_samples=args.samples,
            temperature=args.temperature,
            key=key,
            max_new=max_new,
        )
        tr, te = split_generations(gen, seed=args.seed)
        dcfg = DetectorConfig(task=args.task, mode=args.mode, width=args.width, steps=args.steps)
        det = train_detector(dcfg, run.cfg, run.params, run.split.full, tr, key=key)
        print(json.dumps(evaluate_detector(det, run.split.full, te).__dict__, indent=2))
        return 0
    if args.lm_cmd == "self-train":
        from .selftrain import RestConfig, rest_em

        rc = RestConfig(
            iterations=args.iterations,
            samples_per_query=args.samples,
            cap_per_query=args.cap,
            max_new=max_new,
            top_k=args.top_k,
            top_p=args.top_p,
            finetune=TrainConfig(
                steps=args.steps,
                lr=1e-3,
                warmup=10,
                batch_size=run.tc.batch_size,
                loss_on="answer",
            ),
        )
        hist, _ = rest_em(run.cfg, run.params, run.tok, run.split, rc, key=key)
        print(json.dumps(hist, indent=2))
        return 0
    raise ValueError(f"unknown subcommand {args.lm_cmd!r}")  # pragma: no cover


def _train_devices(args: argparse.Namespace) -> list | None:
    """The devices ``train`` splits batches over: None (one device), the local devices
    (``--data-parallel``), or, after joining the multi-host job, every process's devices."""
    import jax

    given = {
        "--coordinator": args.coordinator,
        "--num-processes": args.num_processes,
        "--process-id": args.process_id,
    }
    if not args.distributed and all(v is None for v in given.values()):
        if args.shard_params and not args.data_parallel:
            raise ValueError(
                "--shard-params splits the parameters over several devices: add "
                "--data-parallel (all local devices) or the multi-host flags"
            )
        return jax.local_devices() if args.data_parallel else None
    missing = [k for k, v in given.items() if v is None]
    if not args.distributed and missing:
        raise ValueError(
            f"multi-host training needs --coordinator, --num-processes and --process-id "
            f"together (missing {', '.join(missing)}), or --distributed alone to let JAX "
            "detect the job"
        )
    if args.process_id is not None and args.num_processes is not None:
        if args.process_id >= args.num_processes:
            raise ValueError(
                f"--process-id must be below --num-processes={args.num_processes}, "
                f"got {args.process_id}"
            )
    from widelab_core.devices import initialize_distributed

    initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    return jax.devices()


def _study(args: argparse.Namespace) -> int:
    from .corpus import Tokenizer
    from .grid import STUDY, aggregate_grid, size_epoch_grid
    from .kg import split_kg
    from .model import LMConfig
    from .runs import check_outputs, file_digest, kg_from_file_or_synthetic
    from .train import TrainConfig

    bad = [f for f in args.fractions if not 0 < f <= 1]
    if bad:
        raise ValueError(f"--fractions must each be in (0, 1], got {bad[0]:g}")
    out = Path(args.out)
    check_outputs(out, [args.kg])
    if args.kg and Path(args.kg).resolve() == (out / STUDY).resolve():
        raise ValueError(f"--out {out} would overwrite the input {args.kg}")
    kg = kg_from_file_or_synthetic(args.kg, args.entities, args.seed)
    split = split_kg(kg, args.unseen_fraction, seed=args.seed)
    tok = Tokenizer.fit(kg.triples)
    configs = [
        LMConfig(tok.vocab_size, d, args.layers, max(1, d // args.head_dim), args.seq_len)
        for d in args.sizes
    ]
    tc = TrainConfig(batch_size=args.batch_size, lr=args.lr, warmup=args.warmup)
    data = {
        "kg": str(Path(args.kg).resolve()) if args.kg else None,
        "kg_sha256": file_digest(args.kg) if args.kg else None,
        "entities": None if args.kg else args.entities,
        "graph_seed": args.seed,
        "unseen_fraction": args.unseen_fraction,
    }
    points = size_epoch_grid(
        out,
        split,
        tok,
        configs,
        args.epochs,
        tc,
        seeds=args.seeds,
        fractions=args.fractions,
        data=data,
        max_queries=args.max_queries,
    )
    print(
        f"{len(points)} cells in {out}; seen-query hallucination rate (mean, standard error, "
        "95% interval):"
    )
    print("fraction  d_model   params  epochs   rate      se    low   high  seeds")
    for r in aggregate_grid(points):
        print(
            f"{r['fraction']:8g}  {r['d_model']:7d}  {r['n_params']:7d}  {r['epochs']:6g}  "
            f"{r['rate']:.3f}  {r['se']:.4f}  {r['low']:.3f}  {r['high']:.3f}  {r['n_seeds']:5d}"
        )
    print(f"wrote {out / STUDY}")
    return 0


def _report(ctx: ReportContext) -> ReportSection:
    from .extraction.report import extraction_report
    from .report import lm_report

    sec = lm_report(ctx)
    extraction_report(ctx, sec)
    return sec


command = Command(
    name="lm",
    help="Language models trained on a knowledge graph: hallucination rates, detectors.",
    configure=_configure,
    run=_run,
    report=_report,
    order=60,
)
