"""The ``widelab lm`` subcommands end to end on a tiny run, and their bad-input errors."""

import argparse
import json

import pytest
from widelab_lm_hallucination import LMConfig, TrainConfig, resume_run
from widelab_lm_hallucination.cli import command


def _run(argv):
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return command.run(parser.parse_args(argv))


def test_make_kg_train_resume_evaluate(tmp_path, capsys):
    kg = tmp_path / "kg.tsv"
    assert _run(["make-kg", "--entities", "12", "--seed", "3", "--out", str(kg)]) == 0
    assert len(kg.read_text().splitlines()) > 10
    run = tmp_path / "run"
    common = [
        "train",
        "--kg",
        str(kg),
        "--d-model",
        "32",
        "--heads",
        "2",
        "--layers",
        "1",
        "--seq-len",
        "48",
        "--batch-size",
        "8",
        "--out",
        str(run),
        "--unseen-fraction",
        "0.2",
    ]
    common += ["--lr", "0.01", "--steps", "150"]
    assert _run([*common, "--checkpoint-every", "75"]) == 0
    assert _run(common) == 0  # resumes at step 150: nothing left to do
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 150
    capsys.readouterr()
    assert _run(["evaluate", "--run", str(run)]) == 0
    rates = json.loads(capsys.readouterr().out)
    assert set(rates) == {"seen", "unseen"} and 0 <= rates["seen"]["rate"] <= 1
    # half-trained: sampled outputs hold both right and wrong objects to detect
    assert (
        _run(["detect", "--run", str(run), "--width", "8", "--steps", "20", "--samples", "4"]) == 0
    )
    det = json.loads(capsys.readouterr().out)
    assert 0 < det["prevalence"] < 1 and 0 <= det["auroc"] <= 1
    assert (
        _run(
            ["self-train", "--run", str(run), "--iterations", "1", "--samples", "2", "--steps", "2"]
        )
        == 0
    )
    hist = json.loads(capsys.readouterr().out)
    assert [h["iteration"] for h in hist] == [0, 1]


def test_bad_inputs_exit_with_clear_errors(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\tc\nonly two\tfields\n")
    assert _run(["train", "--kg", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "bad.tsv:2:" in capsys.readouterr().err
    assert _run(["evaluate", "--run", str(tmp_path / "nothing")]) == 2
    assert "no run.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(["detect"])  # --run is required
    # multi-host flags: all three together (or --distributed), a valid rank; refused
    # before joining any job
    out = ["--out", str(tmp_path / "r")]
    assert _run(["train", "--coordinator", "localhost:1", *out]) == 2
    assert "(missing --num-processes, --process-id)" in capsys.readouterr().err
    dist = ["--coordinator", "localhost:1", "--num-processes", "2", "--process-id", "2"]
    assert _run(["train", *dist, *out]) == 2
    assert "--process-id must be below --num-processes=2, got 2" in capsys.readouterr().err
    # --shard-params needs several devices to split over
    assert _run(["train", "--shard-params", *out]) == 2
    assert "--shard-params splits the parameters" in capsys.readouterr().err


def test_shard_params_reaches_train(tmp_path, monkeypatch, capsys):
    import importlib

    import jax

    train_module = importlib.import_module("widelab_lm_hallucination.train")
    seen = {}

    def fake_train(cfg, tc, stream, **kw):  # the plumbing only: no training
        seen.update(kw)
        state = train_module.TrainState(None, None, 0, None, (0, 0))
        return train_module.TrainResult(state, [], 0.0, 0.0)

    monkeypatch.setattr(train_module, "train", fake_train)
    out = ["--out", str(tmp_path / "r"), "--entities", "12"]
    assert _run(["train", "--data-parallel", "--shard-params", *TINY, *out]) == 0
    assert seen["shard_params"] and seen["devices"] == jax.local_devices()
    assert f"{len(jax.local_devices())} devices; parameters sharded;" in capsys.readouterr().out


TINY = ["--d-model", "16", "--heads", "2", "--layers", "1", "--seq-len", "48"]
TINY += ["--batch-size", "4", "--steps", "2", "--unseen-fraction", "0"]


def test_train_never_writes_over_its_input(tmp_path, capsys):
    # the user's graph file, with a comment and a duplicate line, inside the run folder
    text = "# my graph\nAnn\tborn in\tParis\nAnn\tborn in\tParis\nBo\tborn in\tRome\n"
    kg = tmp_path / "kg.tsv"
    kg.write_text(text)
    assert _run(["train", "--kg", str(kg), *TINY, "--out", str(tmp_path)]) == 0
    assert kg.read_text() == text
    assert (tmp_path / "graph.tsv").exists()
    # an input named like one of the run's outputs is refused before any work
    for name in ("graph.tsv", "run.json", "metrics.jsonl"):
        src = tmp_path / f"in_{name}" / name
        src.parent.mkdir(exist_ok=True)
        src.write_text(text)
        capsys.readouterr()
        assert _run(["train", "--kg", str(src), *TINY, "--out", str(src.parent)]) == 2
        assert f"would overwrite the input {src}" in capsys.readouterr().err
        assert src.read_text() == text
        assert sorted(p.name for p in src.parent.iterdir()) == [name]
    assert _run(["train", "--kg", str(kg), *TINY, "--out", str(kg)]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert kg.read_text() == text


def test_resume_with_other_settings_is_refused_and_extension_recorded(tmp_path, capsys):
    kg = tmp_path / "kg.tsv"
    kg.write_text("".join(f"P{i}\tborn in\tC{i % 3}\n" for i in range(10)))
    out = tmp_path / "run"
    base = ["train", "--kg", str(kg), *TINY, "--out", str(out)]
    assert _run(base) == 0
    meta = (out / "run.json").read_text()
    capsys.readouterr()
    assert _run([*base, "--unseen-fraction", "0.3", "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "data.unseen_fraction: 0.0 recorded, 0.3 given" in err
    assert "train.lr: 0.003 recorded, 0.01 given" in err
    assert (out / "run.json").read_text() == meta
    # a finished run is lengthened only on request, and the request is recorded
    assert _run([*base, "--steps", "4"]) == 2
    assert "--extend" in capsys.readouterr().err
    # a process other than process 0 of a multi-host job only checks
    tc = TrainConfig(**{**json.loads(meta)["train"], "steps": 4})
    cfg = LMConfig(**json.loads(meta)["model"])
    resume_run(out, cfg, tc, json.loads(meta)["data"], extend=True, write=False)
    assert (out / "run.json").read_text() == meta
    assert _run([*base, "--steps", "4", "--extend"]) == 0
    rec = json.loads((out / "run.json").read_text())
    assert rec["extensions"] == [{"from": 2, "to": 4}] and rec["train"]["steps"] == 4
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
    # the input changed on disk: a different graph is a different run
    kg.write_text(kg.read_text() + "P99\tborn in\tC0\n")
    assert _run([*base, "--steps", "4"]) == 2
    assert "data.kg_sha256" in capsys.readouterr().err
