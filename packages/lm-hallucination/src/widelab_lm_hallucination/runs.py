"""Run folders: everything ``widelab lm`` needs to resume, evaluate or probe a model.

A run folder holds ``run.json`` (model and training configs, tokenizer, seeds),
``graph.tsv`` (the full graph, the verifier's ground truth), ``unseen.tsv`` (held-out
triples), ``checkpoint.npz`` and ``metrics.jsonl``. A run never writes over its inputs:
:func:`check_outputs` refuses a folder whose outputs would replace an input file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from widelab_core.cliargs import check_output_dir
from widelab_core.command import atomic_write

from .corpus import Tokenizer
from .kg import KGSplit, KnowledgeGraph, read_tsv
from .model import LMConfig
from .train import (
    CHECKPOINT,
    METRICS,
    PREVIOUS_CHECKPOINT,
    RunFormatError,
    TrainConfig,
    init_state,
    load_latest_checkpoint,
)

RUN_JSON = "run.json"
GRAPH = "graph.tsv"
UNSEEN = "unseen.tsv"
#: Every file a run folder may hold (outputs of ``widelab lm train``).
RUN_FILES = (RUN_JSON, GRAPH, UNSEEN, CHECKPOINT, PREVIOUS_CHECKPOINT, METRICS)


def check_outputs(run_dir: str | Path, inputs: Sequence[str | Path | None]) -> None:
    """Refuse a run folder whose outputs would overwrite one of ``inputs``.

    Args:
        run_dir: the run folder (``--out``).
        inputs: files the run reads (None entries are skipped).

    Raises:
        ValueError: ``run_dir`` is an existing file, lies under a file or is not
            writable, or one of its outputs (or the folder itself) is one of ``inputs``.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {run_dir} is an existing file; --out must name a run folder")
    check_output_dir(run_dir, "--out")
    outs = {(run_dir / name).resolve(): name for name in RUN_FILES}
    for src in inputs:
        if src is None:
            continue
        src_r = Path(src).resolve()
        if src_r in outs:
            raise ValueError(
                f"--out {run_dir} would overwrite the input {src} (the run writes "
                f"{', '.join(RUN_FILES)} into its folder); choose another --out folder "
                "or move the input"
            )


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (recorded so a resumed run can tell its input changed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_run(
    run_dir: str | Path,
    cfg: LMConfig,
    tc: TrainConfig,
    tok: Tokenizer,
    split: KGSplit,
    data: dict | None = None,
) -> None:
    """Write the run's description (before training starts).

    Args:
        run_dir: the run folder.
        cfg, tc, tok, split: model, optimisation, tokenizer and data split.
        data: how the graph and split were made (file and digest or synthetic
            settings, split settings); compared by :func:`resume_run`.
    """
    run_dir = Path(run_dir)
    meta = {
        "model": dataclasses.asdict(cfg),
        "train": dataclasses.asdict(tc),
        "tokenizer": json.loads(tok.to_json()),
        "data": data or {},
        "extensions": [],
    }
    atomic_write(run_dir / RUN_JSON, json.dumps(meta, indent=2))
    atomic_write(run_dir / GRAPH, split.full.to_tsv())
    train_set = set(split.train.triples)
    held = "".join(
        f"{s}\t{r}\t{o}\n" for s, r, o in split.full.triples if (s, r, o) not in train_set
    )
    atomic_write(run_dir / UNSEEN, held)


def read_run_json(run_dir: str | Path) -> dict:
    """The recorded description of a run.

    Raises:
        RunFormatError: ``run.json`` is not UTF-8 JSON (file and line named).
    """
    path = Path(run_dir) / RUN_JSON
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise RunFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except json.JSONDecodeError as e:
        raise RunFormatError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    for k in ("model", "train", "tokenizer"):
        if k not in meta:
            raise RunFormatError(f"{path}: no {k!r} entry; is this a `widelab lm train` folder?")
    return meta


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_run(
    run_dir: str | Path,
    cfg: LMConfig,
    tc: TrainConfig,
    data: dict,
    *,
    extend: bool = False,
    write: bool = True,
) -> dict:
    """Check that ``run_dir`` was started with these settings before resuming it.

    Every recorded model, optimisation and data setting must equal the given one
    (bookkeeping, ``checkpoint_every`` and ``log_every``, may change).
    ``tc.steps`` may differ only with ``extend`` (and only upwards); the extension is
    recorded in ``run.json`` (``extensions``) and the schedule spans the new length
    from then on.

    Args:
        run_dir: an existing run folder.
        cfg, tc: model and optimisation settings of this invocation.
        data: how the graph and split were made (as given to :func:`save_run`).
        extend: allow a longer ``tc.steps`` than recorded.
        write: record an extension in ``run.json`` (False: only check, as the processes
            of a multi-host job other than process 0 do).

    Returns:
        The (possibly updated) run description.

    Raises:
        ValueError: differing settings (each listed with the recorded and the given
            value), or a shorter ``tc.steps`` with ``extend``.
        RunFormatError: an unreadable ``run.json``.
    """
    run_dir = Path(run_dir)
    meta = read_run_json(run_dir)
    given = {"model": dataclasses.asdict(cfg), "train": dataclasses.asdict(tc), "data": data}
    recorded = {k: meta.get(k, {}) for k in given}
    old, new = _flat(recorded), _flat(given)
    diffs = [
        f"{k}: {old.get(k, '(unset)')!r} recorded, {new.get(k, '(unset)')!r} given"
        for k in sorted(set(old) | set(new))
        if k not in _FREE and not _json_eq(old.get(k), new.get(k))
    ]
    if diffs:
        raise ValueError(
            f"{run_dir} was started with other settings ({'; '.join(diffs)}); resume with "
            "the recorded settings, start over with --no-resume, or choose another --out"
        )
    rec_steps = int(meta["train"]["steps"])
    if tc.steps != rec_steps:
        if not extend:
            raise ValueError(
                f"{run_dir} was started with train.steps={rec_steps}, given {tc.steps}; "
                "pass --extend to lengthen the run (its schedule then spans the new length)"
            )
        if tc.steps < rec_steps:
            raise ValueError(
                f"--extend needs more steps than the recorded {rec_steps}, got {tc.steps}"
            )
        meta["extensions"] = [*meta.get("extensions", []), {"from": rec_steps, "to": tc.steps}]
        meta["train"] = dataclasses.asdict(tc)
        if write:
            atomic_write(run_dir / RUN_JSON, json.dumps(meta, indent=2))
    return meta


# settings that do not change the trajectory (bookkeeping) or are checked separately
_FREE = {"train.steps", "train.checkpoint_every", "train.log_every"}


def _json_eq(a, b) -> bool:
    """Equality after a JSON round trip (tuples and lists compare equal)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


@dataclasses.dataclass
class Run:
    """A loaded run: configs, tokenizer, split and trained parameters."""

    cfg: LMConfig
    tc: TrainConfig
    tok: Tokenizer
    split: KGSplit
    params: object
    step: int


def load_run(run_dir: str | Path) -> Run:
    """Load a run folder written by ``widelab lm train``.

    Raises:
        FileNotFoundError: the folder lacks ``run.json``, ``graph.tsv`` or a checkpoint.
        RunFormatError: unreadable ``run.json`` or checkpoints.
        KGFormatError: an unreadable graph file.
    """
    run_dir = Path(run_dir)
    for name in (RUN_JSON, GRAPH):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir}: no {name}; is this a `widelab lm train` folder?")
    meta = read_run_json(run_dir)
    cfg = LMConfig(**meta["model"])
    tc = TrainConfig(**meta["train"])
    tok = Tokenizer(tuple(meta["tokenizer"]["chars"]), tuple(meta["tokenizer"]["relations"]))
    full = read_tsv(run_dir / GRAPH)
    held: set = set()
    if (run_dir / UNSEEN).exists() and (run_dir / UNSEEN).read_text().strip():
        held = set(read_tsv(run_dir / UNSEEN).triples)
    train_kg = full.subset(t for t in full.triples if t not in held)
    unseen = tuple(dict.fromkeys((s, r) for s, r, o in full.triples if (s, r, o) in held))
    split = KGSplit(full, train_kg, tuple(train_kg.queries()), unseen)
    state = load_latest_checkpoint(run_dir, init_state(cfg, tc))
    if state is None:
        raise FileNotFoundError(f"{run_dir}: no {CHECKPOINT}; has the run trained yet?")
    return Run(cfg, tc, tok, split, state.params, state.step)


def kg_from_file_or_synthetic(
    path: str | None, n_entities: int, seed: int, homonyms: float = 0.0, rules: float = 0.0
) -> KnowledgeGraph:
    """Read ``path`` (TSV or ``.nt``) or draw a synthetic graph."""
    from .kg import make_kg, read_kg

    if path:
        return read_kg(path)
    return make_kg(n_entities, seed=seed, homonym_share=homonyms, rule_share=rules)
