#!/usr/bin/env python
"""Train MIRAGE with 🤗 Accelerate.

    accelerate launch training/train.py --recipe training/recipes/mirage_tiny_3deg.yaml \
        --dataset /data/mirage-train --output_dir runs/tiny-3deg

A recipe (YAML, keys = the options below) gives the defaults; the command line overrides them. Any number of
processes, GPUs or nodes come from the accelerate config (`training/configs/`; two CPU processes over gloo:
`training/configs/cpu_2proc_gloo.yaml`). What the script does, in order:

1. data: the `train` split of a `mirage data build` / `mirage data synth` dataset (a folder, its Parquet shards,
   or a Hub id) mixed per task with the official repeats (`mirage_hf.data.training_mixture`, reshuffled every
   epoch; streaming: interleaved with the same proportions), cut into random patches with a random
   non-identity dihedral transform, noise added on the fly to denoising rows (`PairedTrainTransform`);
2. model: a preset or a config, AdamW, the warm-up + cosine learning rate of the official code (per epoch, or
   per step), an EMA of the weights (diffusers' `EMAModel`); mixed precision, gradient accumulation and
   clipping through Accelerate;
3. every `--checkpointing_steps` the full state (`checkpoint-<step>`: model, optimizer, scheduler, EMA, RNG);
   `--resume_from_checkpoint latest` continues exactly where it stopped, at the same batch of the same epoch;
4. every `--validation_steps` the EMA weights are scored (PSNR/SSIM, the paper's protocol) on held-out splits;
   `best/` and `last/` are `save_pretrained` folders of the EMA weights;
5. at the end `model/` is a `from_pretrained` folder with a model card (results as model-index entries, the
   recipe, the data, the command), uploaded with `--push_to_hub REPO_ID`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mirage_hf import MirageConfig, MirageForImageRestoration, MirageImageProcessor
from mirage_hf.allocator import retain_freed_memory
from mirage_hf.data import (
    NOISE_SIGMAS,
    TRAINING_REPEATS,
    PairedTrainTransform,
    load_built_dataset,
    streaming_mixture_probabilities,
    training_mixture,
)
from mirage_hf.errors import MirageError
from mirage_hf.training_utils import (
    checkpoint_step,
    list_checkpoints,
    lr_lambda,
    parse_with_recipe,
    render_model_card,
    resolve_checkpoint,
)

TEMPLATE = Path(__file__).resolve().parents[1] / "model_cards" / "model_card_template.md"
logger = logging.getLogger("mirage.train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train MIRAGE with Accelerate.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--recipe", help="YAML file whose keys are options of this script (the command line wins)")

    group = parser.add_argument_group("model")
    group.add_argument("--model", default="tiny", help="'tiny', 'small', or a folder to fine-tune (config.json + weights)")
    group.add_argument("--model_config", type=json.loads, default=None, help='JSON config overrides, e.g. \'{"embed_dim": 12}\'')
    group.add_argument("--contrastive_loss_weight", type=float, default=0.01, help="λ of the SPD loss (official code 0.01, paper 0.05)")
    group.add_argument("--fourier_loss_weight", type=float, default=0.1)

    group = parser.add_argument_group("data")
    group.add_argument("--dataset", help="folder written by `mirage data build/synth`, or a Hub dataset id")
    group.add_argument("--train_split", default="train")
    group.add_argument("--tasks", nargs="+", default=None, help="train on these tasks only (default: every task in the data)")
    group.add_argument("--task_repeats", type=json.loads, default=None, help=f"JSON task -> repeats per epoch (default {TRAINING_REPEATS})")
    group.add_argument("--noise_sigmas", type=int, nargs="+", default=list(NOISE_SIGMAS))
    group.add_argument("--streaming", action="store_true", help="read the data lazily (needs --max_train_steps)")
    group.add_argument("--shuffle_buffer_size", type=int, default=1000, help="streaming shuffle buffer")
    group.add_argument("--patch_size", type=int, default=128)
    group.add_argument("--pad_small", action="store_true", help="reflect-pad images smaller than the patch")
    group.add_argument("--dataloader_num_workers", type=int, default=4)
    group.add_argument("--validation_dataset", default=None, help="dataset of the held-out splits (default: --dataset)")
    group.add_argument("--validation_splits", nargs="*", default=["validation"], help="held-out splits to score")
    group.add_argument("--max_validation_images", type=int, default=None, help="images per validation set")

    group = parser.add_argument_group("optimisation")
    group.add_argument("--train_batch_size", type=int, default=32, help="per process")
    group.add_argument("--gradient_accumulation_steps", type=int, default=1)
    group.add_argument("--learning_rate", type=float, default=2e-4)
    group.add_argument("--adam_beta1", type=float, default=0.9)
    group.add_argument("--adam_beta2", type=float, default=0.999)
    group.add_argument("--adam_weight_decay", type=float, default=0.01)
    group.add_argument("--max_grad_norm", type=float, default=None, help="clip the gradient norm (the official code does not)")
    group.add_argument("--num_train_epochs", type=int, default=130)
    group.add_argument("--max_train_steps", type=int, default=None, help="stop after this many optimizer steps (overrides epochs)")
    group.add_argument("--lr_schedule_unit", choices=["epoch", "step"], default="epoch")
    group.add_argument("--lr_warmup", type=float, default=15, help="linear warm-up length (epochs or steps)")
    group.add_argument("--lr_cosine_end", type=float, default=150, help="where the cosine reaches 0 (epochs or steps)")
    group.add_argument("--ema_decay", type=float, default=0.999, help="0 disables the EMA (then the raw weights are exported)")
    group.add_argument(
        "--gradient_checkpointing",
        nargs="?",
        const="all",
        choices=["all", "high_resolution"],
        help="recompute block activations in the backward pass: every block (least memory), or only the full- and "
        "half-resolution ones (most of the memory, fewer blocks recomputed)",
    )
    group.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None, help="default: the accelerate config")
    group.add_argument("--seed", type=int, default=0)

    group = parser.add_argument_group("checkpoints, validation, logging, export")
    group.add_argument("--output_dir", default="runs/mirage")
    group.add_argument("--checkpointing_steps", type=int, default=5000)
    group.add_argument("--checkpoints_total_limit", type=int, default=None, help="keep at most this many checkpoints")
    group.add_argument("--resume_from_checkpoint", default=None, help="'latest' or a checkpoint-<step> folder")
    group.add_argument("--validation_steps", type=int, default=5000)
    group.add_argument("--report_to", default="tensorboard", help="tensorboard, wandb, all or none")
    group.add_argument("--logging_steps", type=int, default=10)
    group.add_argument("--model_name", default=None, help="title of the model card (default: the output folder name)")
    group.add_argument("--data_description", default=None, help="model card text about the data (default: generated)")
    group.add_argument("--push_to_hub", default=None, metavar="REPO_ID", help="create this Hub repo and upload model/")
    group.add_argument("--hub_private", action="store_true")
    return parser


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


class SeededPairTransform(PairedTrainTransform):
    """`PairedTrainTransform` whose crop, dihedral transform and noise come from one given SeedSequence, so that a
    sample depends only on (seed, epoch, position) and not on the DataLoader worker that draws it: a resumed
    run that skips the batches it has already seen gets exactly the patches of an uninterrupted run."""

    def __init__(self, patch_size: int, pad_small: bool, sequence: np.random.SeedSequence):
        super().__init__(patch_size=patch_size, pad_small=pad_small)
        self._generators_pair = (
            random.Random(int(sequence.generate_state(1)[0])),
            np.random.default_rng(sequence),
        )

    def _generators(self):
        return self._generators_pair


class MixedPatches(torch.utils.data.Dataset):
    """One epoch of the per-task mix, as (degraded patch, clean patch). `set_epoch` reshuffles the mix."""

    def __init__(self, rows, args):
        self.rows, self.args = rows, args
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.mix = training_mixture(self.rows, self.args.task_repeats, self.args.noise_sigmas, seed=self.args.seed + epoch)

    def __len__(self) -> int:
        return len(self.mix)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.mix[index]
        sequence = np.random.SeedSequence([self.args.seed, self.epoch, index])
        transform = SeededPairTransform(self.args.patch_size, self.args.pad_small, sequence)
        degraded, clean = transform.transform_pair(row["input"], row["target"], row["degradation"], row["id"])
        return {"pixel_values": degraded, "labels": clean}


def select_tasks(dataset, tasks: list[str] | None):
    if not tasks:
        return dataset
    names = dataset.features["task"].names
    unknown = [t for t in tasks if t not in names]
    if unknown:
        raise MirageError(f"unknown task(s) {', '.join(unknown)}; the data has {', '.join(names)}")
    wanted = {names.index(t) for t in tasks}
    return dataset.filter(lambda task: task in wanted, input_columns="task")


def streaming_mix(dataset, args, epoch: int):
    """Interleave the tasks of a streamed split with the proportions of the official mix (one pass over `task`)."""
    from collections import Counter

    from datasets import interleave_datasets

    names = dataset.features["task"].names
    counts = Counter(names[row["task"]] for row in dataset.select_columns(["task"]))
    probabilities = streaming_mixture_probabilities(dict(counts), args.task_repeats, args.noise_sigmas)
    parts = [dataset.filter(lambda task, i=names.index(t): task == i, input_columns="task") for t in probabilities]
    mixed = interleave_datasets(parts, probabilities=list(probabilities.values()), seed=args.seed, stopping_strategy="all_exhausted")
    mixed = mixed.shuffle(seed=args.seed, buffer_size=args.shuffle_buffer_size)
    mixed.set_epoch(epoch)
    transform = PairedTrainTransform(args.patch_size, seed=args.seed + epoch, pad_small=args.pad_small)
    return mixed.map(transform, remove_columns=list(dataset.features))


def load_train_rows(args):
    if not args.dataset:
        raise MirageError("--dataset is required (a `mirage data build` / `mirage data synth` folder or a Hub id)")
    rows = load_built_dataset(args.dataset, streaming=args.streaming, split=args.train_split)
    return select_tasks(rows, args.tasks)


def load_validation_sets(args) -> list:
    """The held-out splits that exist ([] when there is none: validation is then skipped)."""
    if not args.validation_splits:
        return []
    source = args.validation_dataset or args.dataset
    loaded = load_built_dataset(source)
    missing = [s for s in args.validation_splits if s not in loaded]
    if missing and args.validation_dataset:
        raise MirageError(f"{source} has no split(s) {', '.join(missing)} (it has {', '.join(loaded)})")
    if missing:
        logger.warning("no split %s in %s: validation skipped for it", ", ".join(missing), source)
    return [loaded[s] for s in args.validation_splits if s in loaded]


@torch.no_grad()
def validate(model, validation_sets, max_images: int | None, device) -> dict[str, dict[str, float]]:
    """PSNR/SSIM (paper protocol) of `model` and of the degraded input, per set: batch 1, multiple-of-16 crop."""
    from mirage_hf.evaluation import evaluate_model

    return evaluate_model(model, validation_sets, limit=max_images, device=device, score_inputs=True)


# ----------------------------------------------------------------------------------------------------------
# Model and export
# ----------------------------------------------------------------------------------------------------------


def build_model(args) -> MirageForImageRestoration:
    losses = {"contrastive_loss_weight": args.contrastive_loss_weight, "fourier_loss_weight": args.fourier_loss_weight}
    overrides = {**(args.model_config or {}), **losses}
    if args.model in ("tiny", "small"):
        preset = getattr(MirageConfig, args.model)().to_dict()
        try:
            config = MirageConfig.from_dict({**preset, **overrides})
        except ValueError as error:
            raise MirageError(f"invalid model config: {error}") from None
        return MirageForImageRestoration(config)
    if not (Path(args.model) / "config.json").is_file():
        raise MirageError(f"--model must be 'tiny', 'small' or a model folder, got {args.model!r}")
    return MirageForImageRestoration.from_pretrained(args.model, **overrides)


def save_weights(model, folder: Path) -> None:
    """`save_pretrained` (model + processor) into `folder`, replacing it only once the new copy is complete."""
    from mirage_hf.io_utils import atomic_dir

    fresh = folder.with_name(folder.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    with atomic_dir(fresh) as tmp:
        model.save_pretrained(tmp)
        MirageImageProcessor().save_pretrained(tmp)
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
        fresh.rename(folder)
        shutil.rmtree(old)
    else:
        fresh.rename(folder)


def recipe_of(args) -> dict:
    """Every option as run (what the model card records), minus where outputs go."""
    return {k: v for k, v in vars(args).items() if k not in ("output_dir", "push_to_hub", "hub_private", "resume_from_checkpoint")}


def data_description(args, rows) -> str:
    if args.data_description:
        return args.data_description
    lines = [f"Trained on the `{args.train_split}` split of `{args.dataset}`"]
    if not args.streaming:
        names = rows.features["task"].names
        counts = np.bincount(np.asarray(rows["task"]), minlength=len(names))
        repeats = {**TRAINING_REPEATS, **(args.task_repeats or {})}
        per_task = ", ".join(f"{names[i]} {n} images × {repeats.get(names[i], 0)}" for i, n in enumerate(counts) if n)
        lines.append(f" ({per_task} per epoch; denoising images once more per σ in {args.noise_sigmas})")
    lines.append(f", {args.patch_size}×{args.patch_size} random patches with a random non-identity dihedral transform.")
    return "".join(lines)


def export(model, args, results: dict, command: str, rows, training_description: str) -> Path:
    """`output_dir/model`: the EMA weights, the processor, the model card, the recipe and the results."""
    import yaml

    folder = Path(args.output_dir) / "model"
    save_weights(model, folder)
    config = model.config
    size = sum(p.numel() for p in model.parameters())
    card = render_model_card(
        model_name=args.model_name or Path(args.output_dir).resolve().name,
        results=results,
        recipe=recipe_of(args),
        command=command,
        data_description=data_description(args, rows),
        model_description=(
            f"A MIRAGE all-in-one image restoration model ({size / 1e6:.2f} M parameters: embed_dim {config.embed_dim}, "
            f"depths {config.depths}, {config.num_refinement_blocks} refinement block(s)) trained with `training/train.py`."
        ),
        training_description=training_description,
        model_id=args.push_to_hub,
        template_path=TEMPLATE,
    )
    card.save(folder / "README.md")
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe_of(args), sort_keys=False))
    (folder / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
    return folder


def push_to_hub(folder: Path, repo_id: str, private: bool) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="Upload MIRAGE trained with mirage_hf")


# ----------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_with_recipe(build_parser(), argv)
        train(args, argv if argv is not None else sys.argv[1:])
    except MirageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def train(args, argv: list[str]) -> None:
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    if args.streaming and (args.max_train_steps is None or args.lr_schedule_unit != "step"):
        raise MirageError("--streaming needs --max_train_steps and --lr_schedule_unit step (a stream has no epoch length)")
    rows = load_train_rows(args)  # before anything is started: a bad --dataset is one line of error
    retain_freed_memory()  # ~4 s of page faults per CPU step otherwise (mirage_hf/allocator.py)

    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        # Without a GPU (or other accelerator) every process runs on the CPU, so that processes started by
        # torchrun (training/configs/cpu_2proc_gloo.yaml) form one MULTI_CPU group over gloo.
        cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    set_seed(args.seed)  # same initial weights on every process

    # Data. Map-style: one epoch = the official mix; streaming: an interleaved stream.
    validation_sets = load_validation_sets(args) if accelerator.is_main_process else []
    loader_options = dict(batch_size=args.train_batch_size, num_workers=args.dataloader_num_workers, drop_last=True)
    if args.streaming:
        train_dataloader = torch.utils.data.DataLoader(streaming_mix(rows, args, epoch=0), **loader_options)
    else:
        # A private generator: creating the DataLoader iterator must not draw from the global RNG (resume parity).
        train_dataloader = torch.utils.data.DataLoader(
            MixedPatches(rows, args), shuffle=False, generator=torch.Generator().manual_seed(args.seed), **loader_options
        )

    model = build_model(args)
    if args.gradient_checkpointing in ("all", True):  # True: `gradient_checkpointing: true` in a recipe
        model.activation_checkpointing_enable()
    elif args.gradient_checkpointing == "high_resolution":
        model.high_resolution_checkpointing_enable()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), weight_decay=args.adam_weight_decay
    )
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)

    if args.streaming:  # an "epoch" is one pass over the stream, of unknown length
        steps_per_epoch = args.max_train_steps
    else:
        if len(train_dataloader) == 0:
            raise MirageError(f"one epoch has fewer samples than a batch ({args.train_batch_size} per process)")
        steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch) if not args.streaming else sys.maxsize
    # Not prepared: AcceleratedScheduler would step once per process; here it steps once per optimizer update.
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(args.lr_schedule_unit, args.lr_warmup, args.lr_cosine_end, steps_per_epoch)
    )
    accelerator.register_for_checkpointing(lr_scheduler)
    unwrapped = accelerator.unwrap_model(model)
    ema = None
    if args.ema_decay > 0:
        ema = EMAModel(unwrapped.parameters(), decay=args.ema_decay)
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)

    if accelerator.is_main_process:
        tracked = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers("mirage", config=tracked)

    global_step, first_epoch, skip_batches = 0, 0, 0
    if args.resume_from_checkpoint:
        checkpoint = resolve_checkpoint(args.resume_from_checkpoint, output_dir)
        if checkpoint is None:
            logger.info("no checkpoint in %s yet: starting from scratch", output_dir)
        else:
            accelerator.load_state(str(checkpoint))
            global_step = checkpoint_step(checkpoint)
            first_epoch = global_step // steps_per_epoch
            skip_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps
            logger.info("resumed from %s: step %d, epoch %d", checkpoint, global_step, first_epoch)

    num_samples = len(train_dataloader.dataset) if not args.streaming else "stream"
    logger.info("samples per epoch %s, steps per epoch %d, epochs %d, steps %d, processes %d, batch %d x %d accumulation",
                num_samples, steps_per_epoch, num_epochs, max_train_steps, accelerator.num_processes,
                args.train_batch_size, args.gradient_accumulation_steps)

    def with_ema_weights(action):
        """Run `action(model)` with the EMA weights swapped in (the raw weights are put back afterwards)."""
        if ema is None:
            return action(unwrapped)
        ema.store(unwrapped.parameters())
        ema.copy_to(unwrapped.parameters())
        try:
            return action(unwrapped)
        finally:
            ema.restore(unwrapped.parameters())

    def run_validation() -> dict:
        def score(network):
            network.eval()
            try:
                return validate(network, validation_sets, args.max_validation_images, accelerator.device)
            finally:
                network.train()

        results = with_ema_weights(score)
        mean_psnr = float(np.mean([r["psnr"] for r in results.values()]))
        logs = {f"val/{name}/psnr": r["psnr"] for name, r in results.items()} | {"val/mean_psnr": mean_psnr}
        accelerator.log(logs, step=global_step)
        logger.info("step %d validation: mean PSNR %.3f dB", global_step, mean_psnr)
        return results

    best_psnr, results = -math.inf, {}
    start_time = time.time()
    progress = tqdm(total=max_train_steps, initial=global_step, desc="steps", disable=not accelerator.is_local_main_process)
    model.train()
    for epoch in range(first_epoch, num_epochs):
        # A new shuffle of the mix (map-style) or of the stream.
        (train_dataloader.set_epoch if args.streaming else train_dataloader.dataset.set_epoch)(epoch)
        batches = train_dataloader
        if epoch == first_epoch and skip_batches:
            batches = accelerator.skip_first_batches(train_dataloader, skip_batches)
        batches_seen = 0
        for batch in batches:
            batches_seen += 1
            if global_step >= max_train_steps:  # resumed at (or past) the end: export only
                break
            with accelerator.accumulate(model):
                output = model(pixel_values=batch["pixel_values"], labels=batch["labels"])
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue

            lr_scheduler.step()
            if ema is not None:
                ema.step(unwrapped.parameters())
            global_step += 1
            progress.update(1)
            if global_step % args.logging_steps == 0 or global_step == max_train_steps:
                losses = {
                    "loss": output.loss.detach().item(),
                    "l1_loss": output.l1_loss.detach().item(),
                    "fourier_loss": output.fourier_loss.detach().item(),
                    "contrastive_loss": output.contrastive_loss.detach().item(),
                    "lr": lr_scheduler.get_last_lr()[0],
                    "epoch": epoch,
                }
                accelerator.log(losses, step=global_step)
                progress.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{losses['lr']:.2e}")

            if global_step % args.checkpointing_steps == 0 or global_step == max_train_steps:
                save_checkpoint(accelerator, args, output_dir, global_step)
            if validation_sets and (global_step % args.validation_steps == 0 or global_step == max_train_steps):
                results = run_validation()
                mean_psnr = float(np.mean([r["psnr"] for r in results.values()]))
                with_ema_weights(lambda network: save_weights(network, output_dir / "last"))
                if mean_psnr > best_psnr:
                    best_psnr = mean_psnr
                    with_ema_weights(lambda network: save_weights(network, output_dir / "best"))
                    (output_dir / "best" / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
            accelerator.wait_for_everyone()
            if global_step >= max_train_steps:
                break
        if global_step >= max_train_steps or batches_seen == 0:
            break
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if validation_sets and not results:  # nothing scored in this session (e.g. resumed at the end)
            results = run_validation()
        elapsed = time.time() - start_time
        training_description = (
            f"{global_step} optimizer steps of {args.train_batch_size} × {accelerator.num_processes} process(es) × "
            f"{args.gradient_accumulation_steps} accumulation, {args.patch_size}×{args.patch_size} patches, on "
            f"{accelerator.device.type} ({accelerator.num_processes} process(es)); this session trained for "
            f"{elapsed / 60:.1f} min. Exported weights are the EMA (decay {args.ema_decay}) of the training weights."
            if args.ema_decay > 0 else
            f"{global_step} optimizer steps on {accelerator.device.type}; this session trained for {elapsed / 60:.1f} min."
        )
        command = "accelerate launch training/train.py " + shlex.join(argv)
        folder = with_ema_weights(lambda network: export(network, args, results, command, rows, training_description))
        logger.info("model folder: %s", folder)
        if args.push_to_hub:
            push_to_hub(folder, args.push_to_hub, args.hub_private)
            logger.info("uploaded to https://huggingface.co/%s", args.push_to_hub)
    accelerator.end_training()


def save_checkpoint(accelerator, args, output_dir: Path, global_step: int) -> None:
    """`save_state` into `checkpoint-<step>` (every process writes its own RNG state), oldest removed past the limit.

    The state is written to `checkpoint-<step>.partial` and renamed when complete, so a run killed while saving
    never leaves a half-written checkpoint for `--resume_from_checkpoint latest` to pick.
    """
    partial = output_dir / f"checkpoint-{global_step}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        if args.checkpoints_total_limit is not None:
            existing = list_checkpoints(output_dir)
            for old in existing[: max(0, len(existing) - args.checkpoints_total_limit + 1)]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = output_dir / f"checkpoint-{global_step}"
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
