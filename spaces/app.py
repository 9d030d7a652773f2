"""MIRAGE image restoration: the Hugging Face Space (Gradio). The logic lives in `mirage_hf.space`.

Environment: MIRAGE_SPACE_MODEL (default model: bundled name, folder or Hub id), MIRAGE_SPACE_MAX_PIXELS
(largest accepted photo, default 4096×4096).
"""

from pathlib import Path

from mirage_hf.space import build_demo

demo = build_demo(examples_dir=Path(__file__).parent / "examples")

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1).launch(max_file_size="50mb")
