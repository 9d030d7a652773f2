"""Sub-commands of the `mirage` CLI; see `mirage_hf.cli`."""
