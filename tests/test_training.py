"""training/train.py and mirage_hf.training_utils: schedule, recipes, data, resume parity, 2-process gloo, export.

The end-to-end runs are subprocesses (`python training/train.py`, `accelerate launch --cpu --num_processes 2`)
on a tiny config, 16×16 patches and a handful of steps; the Hub upload is checked with a fake `HfApi`.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mirage_hf.errors import MirageError
from mirage_hf.training_utils import (
    list_checkpoints,
    lr_lambda,
    parse_with_recipe,
    render_model_card,
    resolve_checkpoint,
    warmup_cosine_factor,
)

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = ROOT / "training" / "train.py"
TINY_MODEL = json.dumps(dict(embed_dim=6, depths=[1, 1, 1, 1], num_refinement_blocks=1, num_heads=[1, 1, 1, 1]))


@pytest.fixture(scope="module")
def train_module():
    sys.path.insert(0, str(TRAIN_SCRIPT.parent))
    try:
        import train

        yield train
    finally:
        sys.path.remove(str(TRAIN_SCRIPT.parent))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """A built dataset: train (denoise + derain, 24×24) and validation (2 rows), in the `mirage data build` layout."""
    from datasets import Dataset, DatasetDict
    from PIL import Image

    from mirage_hf.data import mirage_features, save_dataset_dict

    rng = np.random.default_rng(0)

    def rows(split, count):
        out = []
        for i in range(count):
            clean = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
            rainy = np.clip(clean.astype(int) + 40 * (rng.random((24, 24, 1)) > 0.9), 0, 255).astype(np.uint8)
            task, degradation, image = ("denoise", "noise", clean) if i % 2 == 0 else ("derain", "rain", rainy)
            out.append(dict(input=Image.fromarray(image), target=Image.fromarray(clean), task=task,
                            degradation=degradation, source=f"synthetic:{split}", id=f"{split}{i}"))
        return Dataset.from_list(out, features=mirage_features())

    path = tmp_path_factory.mktemp("data") / "tiny"
    save_dataset_dict(DatasetDict(train=rows("train", 6), validation=rows("validation", 2)), path)
    return path


def train_command(dataset, output_dir, *extra):
    return [
        "--dataset", str(dataset), "--output_dir", str(output_dir), "--model", "tiny", "--model_config", TINY_MODEL,
        "--patch_size", "16", "--train_batch_size", "2", "--dataloader_num_workers", "0", "--report_to", "none",
        "--task_repeats", '{"denoise": 1, "derain": 1}', "--lr_schedule_unit", "step", "--lr_warmup", "2",
        "--lr_cosine_end", "8", "--learning_rate", "1e-3", "--max_grad_norm", "1.0", "--ema_decay", "0.9",
        "--logging_steps", "1", *extra,
    ]  # fmt: skip


def run_train(args, timeout=240, launcher=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = (launcher or [sys.executable]) + [str(TRAIN_SCRIPT), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# ----------------------------------------------------------------------------------------------------------
# Schedule, recipes, checkpoints
# ----------------------------------------------------------------------------------------------------------


def test_schedule_matches_the_official_per_epoch_warmup_cosine():
    # LinearWarmupCosineAnnealingLR(warmup_epochs=15, max_epochs=150), stepped with the epoch, lr 2e-4:
    assert warmup_cosine_factor(0, 15, 150) == 0.0
    assert 2e-4 * warmup_cosine_factor(1, 15, 150) == pytest.approx(1.4286e-5, rel=1e-4)
    assert warmup_cosine_factor(14, 15, 150) == pytest.approx(1.0)
    assert warmup_cosine_factor(15, 15, 150) == pytest.approx(1.0)
    assert 2e-4 * warmup_cosine_factor(129, 15, 150) == pytest.approx(1.17e-5, rel=0.05)  # end of a 130-epoch run
    assert warmup_cosine_factor(150, 15, 150) == pytest.approx(0.0, abs=1e-12)
    assert 2e-4 * warmup_cosine_factor(169, 15, 150) == pytest.approx(9.6e-6, rel=0.05)  # rises again (CDD-11)

    per_epoch = lr_lambda("epoch", 15, 150, steps_per_epoch=10)
    assert [per_epoch(s) for s in (0, 9, 10, 19, 20)] == [0.0, 0.0, 1 / 14, 1 / 14, 2 / 14]
    per_step = lr_lambda("step", 3, 10, steps_per_epoch=10)
    assert [per_step(s) for s in (0, 1, 2, 3)] == [0.0, 0.5, 1.0, 1.0]
    assert per_step(10) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(MirageError):
        lr_lambda("iteration", 3, 10, 10)


def test_recipe_gives_defaults_and_the_command_line_wins(tmp_path, train_module):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: 1.0e-3\nnum_train_epochs: 7\nmodel_config: {embed_dim: 12}\ntasks: [denoise]\n")
    args = parse_with_recipe(train_module.build_parser(), ["--recipe", str(recipe), "--num_train_epochs", "3"])
    assert (args.learning_rate, args.num_train_epochs, args.model_config, args.tasks) == (1e-3, 3, {"embed_dim": 12}, ["denoise"])
    assert args.train_batch_size == 32 and args.patch_size == 128 and args.contrastive_loss_weight == 0.01

    recipe.write_text("learning_rat: 1.0\n")
    with pytest.raises(MirageError, match="unknown option"):
        parse_with_recipe(train_module.build_parser(), ["--recipe", str(recipe)])
    with pytest.raises(MirageError, match="not found"):
        parse_with_recipe(train_module.build_parser(), ["--recipe", str(tmp_path / "missing.yaml")])


def test_shipped_recipes_parse_and_follow_the_paper(train_module):
    recipes = sorted((ROOT / "training" / "recipes").glob("*.yaml"))
    assert len(recipes) >= 6
    for path in recipes:
        args = parse_with_recipe(train_module.build_parser(), ["--recipe", str(path)])
        train_module.build_model(args)  # every recipe's model config is valid
        if path.stem != "default_cpu":
            assert (args.learning_rate, args.train_batch_size, args.patch_size) == (2e-4, 32, 128), path.name
            assert (args.lr_warmup, args.lr_cosine_end, args.lr_schedule_unit) == (15, 150, "epoch"), path.name
            assert args.num_train_epochs in (130, 150, 170), path.name


def test_checkpoint_resolution(tmp_path):
    assert resolve_checkpoint("latest", tmp_path) is None
    for step in (10, 2, 100):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-200.partial").mkdir()  # an interrupted save is never picked
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-10", "checkpoint-100"]
    assert resolve_checkpoint("latest", tmp_path).name == "checkpoint-100"
    with pytest.raises(MirageError):
        resolve_checkpoint(str(tmp_path / "nope"), tmp_path)


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


def test_mixed_patches_depend_only_on_seed_epoch_and_position(tiny_dataset, train_module):
    args = parse_with_recipe(train_module.build_parser(), train_command(tiny_dataset, "unused"))
    rows = train_module.load_train_rows(args)
    patches = train_module.MixedPatches(rows, args)
    assert len(patches) == 3 * 3 + 3  # 3 denoise rows once per σ, 3 derain rows once
    first = [patches[i] for i in range(len(patches))]
    again = train_module.MixedPatches(rows, args)
    for index in reversed(range(len(again))):  # another order, another object: the same patches
        torch.testing.assert_close(again[index]["pixel_values"], first[index]["pixel_values"], rtol=0, atol=0)
    assert first[0]["pixel_values"].shape == (3, 16, 16)
    patches.set_epoch(1)
    assert any(not torch.equal(patches[i]["labels"], first[i]["labels"]) for i in range(len(patches)))

    args.tasks = ["derain"]
    assert len(train_module.MixedPatches(train_module.load_train_rows(args), args)) == 3
    args.tasks = ["deblur_typo"]
    with pytest.raises(MirageError, match="unknown task"):
        train_module.load_train_rows(args)


def test_streaming_mix_yields_patches(tiny_dataset, train_module):
    args = parse_with_recipe(train_module.build_parser(), train_command(tiny_dataset, "unused", "--streaming"))
    stream = train_module.streaming_mix(train_module.load_train_rows(args), args, epoch=0)
    samples = list(stream.take(5))
    assert len(samples) == 5 and all(torch.as_tensor(s["pixel_values"]).shape == (3, 16, 16) for s in samples)


def test_streaming_run_trains_and_exports(tmp_path, tiny_dataset, train_module):
    output = tmp_path / "stream"
    command = train_command(tiny_dataset, output, "--streaming", "--max_train_steps", "2", "--checkpointing_steps", "2",
                            "--gradient_checkpointing", "high_resolution")
    assert train_module.main([*command, "--validation_splits"]) == 0
    assert (output / "checkpoint-2").is_dir() and (output / "model" / "model.safetensors").is_file()
    assert train_module.main([*command[:-2], "--lr_schedule_unit", "epoch"]) == 2  # a stream has no epochs


# ----------------------------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------------------------


def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path, tiny_dataset):
    # Validation at every step keeps the run busy long enough to be killed between checkpoints.
    steps = ["--max_train_steps", "6", "--checkpointing_steps", "2", "--validation_steps", "1"]
    straight = tmp_path / "straight"
    run_train(train_command(tiny_dataset, straight, *steps))

    # Kill a run (SIGKILL, no clean-up) once its first checkpoint is complete, then resume from the latest one.
    resumed = tmp_path / "resumed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, str(TRAIN_SCRIPT), *train_command(tiny_dataset, resumed, *steps)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    deadline = time.time() + 180
    while not list_checkpoints(resumed) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = list_checkpoints(resumed)
    assert killed_at, "the run died before its first checkpoint"
    assert not (resumed / "model").exists(), "the run finished before it could be killed"
    run_train(train_command(tiny_dataset, resumed, *steps, "--resume_from_checkpoint", "latest"))

    for name in ("model/model.safetensors", "checkpoint-6/model.safetensors"):
        expected, actual = load_file(straight / name), load_file(resumed / name)
        assert expected.keys() == actual.keys()
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=1e-6, msg=f"{name} {key}")
    # The EMA and the optimizer moved: the exported (EMA) weights differ from the raw ones.
    raw, ema = load_file(straight / "checkpoint-6/model.safetensors"), load_file(straight / "model/model.safetensors")
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)

    # The from_pretrained folder: weights, processor, card with model-index results, recipe and command.
    from huggingface_hub import ModelCard

    from mirage_hf.inference import load_model

    model, _ = load_model(str(straight / "model"))
    assert model.config.embed_dim == 6
    card = ModelCard.load(straight / "model" / "README.md")
    assert {r.dataset_name for r in card.data.eval_results} == {"noise", "rain"}
    assert {r.metric_type for r in card.data.eval_results} == {"psnr", "ssim"}
    assert "accelerate launch training/train.py --dataset" in card.text and "max_train_steps: 6" in card.text
    assert str(tiny_dataset) in card.text
    results = json.loads((straight / "model" / "eval_results.json").read_text())
    assert set(results) == {"noise", "rain"} and math.isfinite(results["rain"]["psnr"])
    for folder in ("best", "last"):
        assert (straight / folder / "model.safetensors").is_file() and (straight / folder / "config.json").is_file()


def test_two_cpu_processes_train_checkpoint_and_resume(tmp_path, tiny_dataset):
    # `accelerate launch --cpu --num_processes 2` starts one process in accelerate 1.x (it wants an MPI hostfile):
    # the shipped config starts two with torchrun, which train.py puts on the CPU (MULTI_CPU, gloo).
    config = ROOT / "training" / "configs" / "cpu_2proc_gloo.yaml"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--main_process_port", "29517"]
    output = tmp_path / "ddp"
    common = train_command(tiny_dataset, output, "--checkpointing_steps", "2", "--validation_steps", "2")
    run_train([*common, "--max_train_steps", "2"], launcher=launcher)
    assert [p.name for p in list_checkpoints(output)] == ["checkpoint-2"]
    assert {f.name for f in (output / "checkpoint-2").iterdir()} >= {"random_states_0.pkl", "random_states_1.pkl"}
    result = run_train([*common, "--max_train_steps", "3", "--resume_from_checkpoint", "latest"], launcher=launcher)
    assert "processes 2" in result.stderr and "resumed from" in result.stderr
    assert [p.name for p in list_checkpoints(output)] == ["checkpoint-2", "checkpoint-3"]
    assert (output / "model" / "model.safetensors").is_file()


def test_bad_input_gives_one_line_error(tmp_path, tiny_dataset, train_module, capsys):
    assert train_module.main(train_command(tmp_path / "missing", tmp_path / "out")) == 2
    assert capsys.readouterr().err.strip().startswith("error:")
    assert train_module.main(train_command(tiny_dataset, tmp_path / "out", "--tasks", "deblur_typo")) == 2
    assert "unknown task" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_push_to_hub_creates_the_repo_and_uploads_the_folder(tmp_path, monkeypatch, train_module):
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls.append(("upload", repo_id, folder_path))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    train_module.push_to_hub(tmp_path, "me/mirage-test", private=True)
    assert calls == [("create", "me/mirage-test", True, True), ("upload", "me/mirage-test", str(tmp_path))]


def test_model_card_rendering_without_and_with_input_scores():
    plain = render_model_card("m", {"Rain100L": {"psnr": 30.0, "ssim": 0.9, "count": 2}}, {"lr": 1}, "cmd", "data", "desc")
    assert "| Rain100L | 2 | 30.00 | 0.9000 |" in plain.text
    assert plain.data.eval_results[0].metric_value == 30.0
    both = render_model_card(
        "m", {"rain": {"psnr": 30.0, "ssim": 0.9, "count": 2, "input_psnr": 20.0, "input_ssim": 0.5}}, {}, "cmd", "data", "desc"
    )
    assert "| rain | 2 | 20.00 / 0.5000 | 30.00 / 0.9000 |" in both.text
    empty = render_model_card("m", {}, {}, "cmd", "data", "desc")
    assert "No evaluation was run." in empty.text and not empty.data.eval_results


def test_bundled_default_weights_load_offline_and_carry_their_card():
    from huggingface_hub import ModelCard

    from mirage_hf.inference import BUNDLED_WEIGHTS_DIR, load_model

    folder = BUNDLED_WEIGHTS_DIR / "mirage-default"
    assert (folder / "model.safetensors").stat().st_size < 10 * 1024 * 1024
    model, processor = load_model()
    restored = model(torch.rand(1, 3, 20, 28)).reconstruction
    assert restored.shape == (1, 3, 20, 28) and torch.isfinite(restored).all()
    card = ModelCard.load(folder / "README.md")
    assert {r.dataset_name for r in card.data.eval_results} >= {"noise_25", "rain", "haze", "blur", "lowlight"}
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bundled_weights
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert not set(bundled_weights.TRAIN_PHOTOS) & set(bundled_weights.HELD_OUT_PHOTOS)
    for name in bundled_weights.TRAIN_PHOTOS + bundled_weights.HELD_OUT_PHOTOS:
        assert name in card.text
