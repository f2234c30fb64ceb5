"""``widelab lm extract``: run labelling functions, serve the validation UI, export."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from widelab_core.cliargs import nonnegative_int, positive_int, probability
from widelab_core.command import atomic_write


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``extract`` sub-subcommands to ``parser``."""
    from .pipeline import POLICIES

    sub = parser.add_subparsers(dest="extract_cmd", required=True)
    p = sub.add_parser("run", help="run labelling functions over documents into a store")
    p.add_argument("--schema", required=True, help="schema file (.toml or .json)")
    p.add_argument("--docs", required=True, help=".jsonl file, .txt file or folder of .txt")
    p.add_argument("--db", required=True, help="SQLite store (created or resumed)")
    p.add_argument(
        "--functions",
        default="keyword",
        help="comma-separated labelling functions (keyword, kg-lm, or registered ones)",
    )
    p.add_argument("--lm-run", help="a `widelab lm train` folder, for the kg-lm function")
    p.add_argument(
        "--lm-confidence",
        choices=["likelihood", "detector"],
        default="likelihood",
        help="kg-lm confidence: the model's probability, or a trained detector's",
    )
    p.add_argument("--subject-field", default="subject", help="document metadata field")
    p.add_argument("--seed", type=nonnegative_int, default=0)

    p = sub.add_parser("serve", help="the validation UI in the browser")
    p.add_argument("--db", required=True)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: local only)")
    p.add_argument("--port", type=nonnegative_int, default=8765)
    p.add_argument("--policy", choices=POLICIES, default="confidence")
    p.add_argument("--threshold", type=probability, default=0.5, help="automatic acceptance")
    p.add_argument("--who", default="validator", help="validator name stored with decisions")

    p = sub.add_parser("export", help="validated values with provenance, as CSV or JSON lines")
    p.add_argument("--db", required=True)
    p.add_argument("--out", required=True, help="output .csv or .jsonl")
    p.add_argument(
        "--automatic-threshold",
        type=probability,
        help="also export unvalidated top candidates with at least this confidence",
    )

    p = sub.add_parser("make-corpus", help="a synthetic collection with known answers")
    p.add_argument("--out", required=True, help="folder for docs.jsonl, schema.json, truth.csv")
    p.add_argument("--entities", type=positive_int, default=200)
    p.add_argument("--seed", type=nonnegative_int, default=0)


def _unit(name: str, v: float) -> float:
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"--{name} must be in [0, 1], got {v}")
    return v


def run(args: argparse.Namespace) -> int:
    """Execute ``widelab lm extract ...`` (user errors raise ValueError)."""
    from .pipeline import export, run_extraction
    from .store import Store

    cmd = args.extract_cmd
    if cmd == "run":
        from .documents import iter_documents
        from .functions import labelling_function
        from .schema import read_schema

        schema = read_schema(args.schema)
        names = [n.strip() for n in args.functions.split(",") if n.strip()]
        if not names:
            raise ValueError("--functions names no labelling function")
        if not Path(args.docs).exists():
            raise FileNotFoundError(f"--docs {args.docs}: no such file or folder")
        fns = {}
        for name in names:
            if name == "kg-lm":
                fns[name] = _kg_lm(args)
            else:
                try:
                    fns[name] = labelling_function(name)
                except KeyError as e:
                    raise ValueError(str(e.args[0])) from None
        with Store(args.db, schema) as store:
            st = run_extraction(store, iter_documents(args.docs), fns)
        print(
            f"{st.documents} documents ({st.skipped} already done), {st.candidates} new "
            f"candidates in {st.seconds:.1f} s -> {args.db}"
        )
        return 0
    if cmd == "serve":
        from .server import serve

        if not 0 <= args.port < 65536:
            raise ValueError(f"--port must be in [0, 65535], got {args.port}")
        _unit("threshold", args.threshold)
        if not Path(args.db).is_file():
            raise FileNotFoundError(f"--db {args.db}: no such store; run `extract run` first")
        return serve(
            args.db,
            host=args.host,
            port=args.port,
            policy=args.policy,
            threshold=args.threshold,
            who=args.who,
        )
    if cmd == "export":
        out = Path(args.out)
        if out.suffix.lower() not in (".csv", ".jsonl"):
            raise ValueError(f"--out {out} must end in .csv or .jsonl")
        if out.is_dir() or not out.parent.is_dir():
            raise ValueError(f"--out {out}: the folder {out.parent} must exist")
        if args.automatic_threshold is not None:
            _unit("automatic-threshold", args.automatic_threshold)
        if not Path(args.db).is_file():
            raise FileNotFoundError(f"--db {args.db}: no such store")
        with Store(args.db) as store:
            n = export(store, out, automatic_threshold=args.automatic_threshold)
        print(f"wrote {n} rows to {out}")
        return 0
    if cmd == "make-corpus":
        from ..kg import make_kg
        from .documents import write_jsonl
        from .synthetic import synthetic_corpus

        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; give a folder")
        corpus = synthetic_corpus(make_kg(args.entities, seed=args.seed), seed=args.seed)
        write_jsonl(out / "docs.jsonl", corpus.documents)
        atomic_write(out / "schema.json", corpus.schema.to_json())
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["doc_id", "variable", "value"])
        for (d, v), val in corpus.truth.items():
            w.writerow([d, v, "" if val is None else val])
        atomic_write(out / "truth.csv", buf.getvalue())
        print(f"wrote {len(corpus.documents)} documents, schema and truth to {out}")
        return 0
    raise ValueError(f"unknown extract command {cmd!r}")  # pragma: no cover


def _kg_lm(args: argparse.Namespace):
    import jax

    from ..runs import load_run
    from .functions import labelling_function

    if not args.lm_run:
        raise ValueError("the kg-lm function needs --lm-run (a `widelab lm train` folder)")
    r = load_run(args.lm_run)
    det = None
    if args.lm_confidence == "detector":
        from ..detectors import DetectorConfig, train_detector
        from ..hallucination import generate

        key = jax.random.key(args.seed)
        gen = generate(
            r.cfg, r.params, r.tok, list(r.split.seen), greedy=False, n_samples=4, key=key
        )
        det = train_detector(
            DetectorConfig(task="sentence"), r.cfg, r.params, r.split.full, gen, key=key
        )
        print("trained a sentence-level detector for kg-lm confidences", file=sys.stderr)
    return labelling_function(
        "kg-lm",
        cfg=r.cfg,
        params=r.params,
        tok=r.tok,
        detector=det,
        subject_field=args.subject_field,
    )
