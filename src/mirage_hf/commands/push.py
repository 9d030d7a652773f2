"""`mirage push` and `mirage push-space`: publish a model folder or the Gradio Space on the Hugging Face Hub.

Both commands first assemble the exact folder to upload in a temporary place, then create the repository
(`huggingface_hub.create_repo`, `exist_ok=True`) and upload that folder in one commit (`upload_folder`).
`--dry-run DIR` writes the same folder to DIR and uploads nothing.

- A model upload holds `config.json`, `model.safetensors`, `preprocessor_config.json` and `README.md` (the
  folder's own model card, or a short generated one).
- A Space upload holds `spaces/` of this checkout (`app.py`, `README.md`, `requirements.txt`, `examples/`)
  plus a copy of the `mirage_hf` package (with its bundled weights) next to `app.py`, so the Space runs the
  code it was pushed with and needs nothing but the registry packages of `requirements.txt`.
"""

from __future__ import annotations

import argparse

MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "README.md")
SPACE_MODEL_VARIABLE = "MIRAGE_SPACE_MODEL"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a model folder to the Hugging Face Hub",
        description="Upload a MIRAGE model folder (config.json, model.safetensors, preprocessor_config.json and a "
        "README.md model card) to a Hub model repository, creating it if needed. The folder is checked "
        "(loaded once) before anything is uploaded. Log in first with `hf auth login` or set HF_TOKEN.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by save_pretrained / mirage train")
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub repository, e.g. your-name/mirage-small")
    _add_common_arguments(parser)
    parser.set_defaults(func=run_push)

    parser = subparsers.add_parser(
        "push-space",
        help="upload the Gradio demo as a Hugging Face Space",
        description="Upload the Gradio Space (spaces/ of this checkout plus a copy of the mirage_hf package) to a "
        "Hub Space repository, creating it if needed. Log in first with `hf auth login` or set HF_TOKEN.",
    )
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub Space repository, e.g. your-name/mirage-demo")
    parser.add_argument(
        "--model", default=None, metavar="HUB_ID_OR_FOLDER",
        help="the Space's default model: a Hub id (listed in the Space card and set as the Space variable "
        f"{SPACE_MODEL_VARIABLE}) or a local model folder (copied into the Space as model/); "
        "default: the weights bundled with mirage_hf",
    )
    parser.add_argument(
        "--space-dir", default=None, metavar="DIR",
        help="the Space sources to upload (default: spaces/ of the checkout mirage_hf runs from)",
    )
    _add_common_arguments(parser)
    parser.set_defaults(func=run_push_space)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--commit-message", default=None, metavar="TEXT", help="message of the upload commit")
    parser.add_argument(
        "--dry-run", default=None, metavar="DIR",
        help="write the exact folder that would be uploaded to DIR (new or empty) and upload nothing",
    )


# ---------------------------------------------------------------------------------------------------
# Assembling the folders
# ---------------------------------------------------------------------------------------------------


def check_model_dir(model_dir) -> None:
    """Raise MirageError (one line) unless `model_dir` holds a loadable MIRAGE model in safetensors."""
    import json
    from pathlib import Path

    from ..errors import MirageError
    from ..inference import load_model

    path = Path(model_dir)
    if not path.is_dir():
        raise MirageError(f"{path}: no such model folder")
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise MirageError(f"{path} is not a MIRAGE model folder: {name} is missing")
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (ValueError, AttributeError):
        raise MirageError(f"{path}/config.json is not a JSON object") from None
    if model_type != "mirage":
        raise MirageError(f"{path} is not a MIRAGE model folder (model_type {model_type!r} in config.json)")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # one check, no "Loading weights" bar in the command's output
    try:
        load_model(str(path.resolve()))
    except MirageError:
        raise
    except Exception as error:  # a corrupt safetensors file, a config of another model type, mismatched shapes
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise MirageError(f"{path}: the model cannot be loaded ({first_line})") from None


def model_card_text(model_dir, repo_id: str) -> str:
    """The folder's README.md if it has one, else a short model card with Hub metadata."""
    from pathlib import Path

    from huggingface_hub import ModelCardData

    readme = Path(model_dir) / "README.md"
    if readme.is_file():
        return readme.read_text(encoding="utf-8")
    card_data = ModelCardData(
        license="mit", library_name="transformers", pipeline_tag="image-to-image",
        tags=["image-restoration", "all-in-one-image-restoration", "mirage", "mirage_hf"],
    )
    body = f"""# {repo_id.split("/")[-1]}

A [MIRAGE](https://arxiv.org/abs/2505.18679) all-in-one image restoration model (noise, rain, haze, blur,
low light) for `mirage_hf`, the Hugging Face port of the [official code](https://github.com/Amazingren/MIRAGE).

```python
from mirage_hf.inference import load_model, restore

model, processor = load_model("{repo_id}")
pixel_values = processor(image, return_tensors="pt").pixel_values
restored = processor.post_process(restore(model, pixel_values, tile_size=512))[0]
```

or from the command line: `mirage restore photo.jpg -o restored/ --model {repo_id}`.
"""
    return f"---\n{card_data.to_yaml()}\n---\n\n{body}"


def assemble_model_folder(model_dir, repo_id: str, target) -> list[str]:
    """Write the model upload into `target` (an existing empty folder); returns the relative file names."""
    import shutil
    from pathlib import Path

    from ..image_processing_mirage import MirageImageProcessor

    source, target = Path(model_dir), Path(target)
    shutil.copy2(source / "config.json", target / "config.json")
    shutil.copy2(source / "model.safetensors", target / "model.safetensors")
    if (source / "preprocessor_config.json").is_file():
        shutil.copy2(source / "preprocessor_config.json", target / "preprocessor_config.json")
    else:
        MirageImageProcessor().save_pretrained(target)
    (target / "README.md").write_text(model_card_text(source, repo_id), encoding="utf-8")
    return sorted(MODEL_FILES)


def default_space_dir():
    """`spaces/` of the source checkout that this mirage_hf is imported from (None if not a checkout)."""
    from pathlib import Path

    candidate = Path(__file__).resolve().parents[3] / "spaces"
    return candidate if (candidate / "app.py").is_file() else None


def _ignore_caches(folder, names):
    return [name for name in names if name == "__pycache__" or name.endswith((".pyc", ".pyo")) or name.startswith(".")]


def assemble_space_folder(space_dir, target, model: str | None = None) -> list[str]:
    """Write the Space upload into `target` (an existing empty folder); returns the relative file names.

    Copies `space_dir` (caches and hidden files left out), the `mirage_hf` package as `mirage_hf/`, and with a
    local `model` folder that model as `model/`; with a Hub id `model`, lists it under `models:` in the card."""
    import shutil
    from pathlib import Path

    import mirage_hf
    from huggingface_hub import SpaceCard

    from ..errors import MirageError

    space_dir, target = Path(space_dir), Path(target)
    for name in ("app.py", "README.md", "requirements.txt"):
        if not (space_dir / name).is_file():
            raise MirageError(f"{space_dir} is not a Space folder: {name} is missing")
    shutil.copytree(space_dir, target, ignore=_ignore_caches, dirs_exist_ok=True)
    shutil.copytree(Path(mirage_hf.__file__).parent, target / "mirage_hf", ignore=_ignore_caches)
    if model is not None and Path(model).is_dir():
        (target / "model").mkdir()
        assemble_model_folder(model, "model", target / "model")
    elif model is not None:
        card = SpaceCard.load(target / "README.md")
        card.data.models = [model]
        card.save(target / "README.md")
    return sorted(str(path.relative_to(target)) for path in target.rglob("*") if path.is_file())


# ---------------------------------------------------------------------------------------------------
# Uploading
# ---------------------------------------------------------------------------------------------------


def write_dry_run(dry_run_dir, assemble) -> list[str]:
    """Assemble into `dry_run_dir` (which must be new or empty) atomically and return the file list."""
    from pathlib import Path

    from ..errors import MirageError
    from ..io_utils import atomic_dir

    target = Path(dry_run_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise MirageError(f"--dry-run folder {target} exists and is not empty")
    with atomic_dir(target) as folder:
        return assemble(folder)


def upload(folder, repo_id: str, repo_type: str, private: bool, commit_message: str, space_variables=None) -> str:
    """create_repo (exist_ok) + upload_folder; Hub and login errors become one MirageError line. Returns the URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import LocalTokenNotFoundError

    from ..errors import MirageError

    api = HfApi()
    try:
        extra = {"space_sdk": "gradio"} if repo_type == "space" else {}
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **extra)
        for key, value in (space_variables or {}).items():
            api.add_space_variable(repo_id, key, value)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message)
    except LocalTokenNotFoundError:
        raise MirageError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN") from None
    except Exception as error:  # HTTP, connection, offline-mode and repo-id errors, reported as one line
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise MirageError(f"upload to {repo_id} failed: {first_line}") from None
    return str(url)


def _print_listing(header: str, files: list[str]) -> None:
    """The file list, with the copied mirage_hf package shown as one line."""
    print(header)
    package_files = [name for name in files if name.startswith("mirage_hf/")]
    for name in files:
        if not name.startswith("mirage_hf/"):
            print(f"  {name}")
    if package_files:
        print(f"  mirage_hf/ ({len(package_files)} files: the package and its bundled weights)")


def run_push(args: argparse.Namespace) -> int:
    import functools
    import tempfile

    check_model_dir(args.model_dir)
    assemble = functools.partial(assemble_model_folder, args.model_dir, args.repo_id)
    if args.dry_run is not None:
        files = write_dry_run(args.dry_run, assemble)
        _print_listing(f"dry run: wrote {args.dry_run} ({len(files)} files), nothing uploaded to {args.repo_id}:", files)
        return 0
    with tempfile.TemporaryDirectory(prefix="mirage_push_") as folder:
        files = assemble(folder)
        url = upload(folder, args.repo_id, "model", args.private, args.commit_message or "Upload MIRAGE model")
    _print_listing(f"uploaded {len(files)} files to {url}:", files)
    return 0


def run_push_space(args: argparse.Namespace) -> int:
    import functools
    import tempfile
    from pathlib import Path

    from ..errors import MirageError

    space_dir = Path(args.space_dir) if args.space_dir else default_space_dir()
    if space_dir is None:
        raise MirageError("no spaces/ folder found next to this mirage_hf: run from a source checkout or pass --space-dir")
    if args.model is not None and Path(args.model).exists():
        check_model_dir(args.model)
    variables = {SPACE_MODEL_VARIABLE: args.model} if args.model is not None and not Path(args.model).exists() else {}
    assemble = functools.partial(assemble_space_folder, space_dir, model=args.model)
    if args.dry_run is not None:
        files = write_dry_run(args.dry_run, assemble)
        _print_listing(f"dry run: wrote {args.dry_run} ({len(files)} files), nothing uploaded to {args.repo_id}:", files)
        for key, value in variables.items():
            print(f"would set the Space variable {key}={value}")
        return 0
    with tempfile.TemporaryDirectory(prefix="mirage_push_space_") as folder:
        files = assemble(folder)
        url = upload(
            folder, args.repo_id, "space", args.private, args.commit_message or "Upload MIRAGE Space", variables,
        )
    _print_listing(f"uploaded {len(files)} files to {url}:", files)
    return 0
