"""Gin plumbing of the binaries: parsing with clear errors, recording the operative config."""

from __future__ import annotations

import os

import tensorflow as tf
from absl import flags

import gin

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ConfigError(ValueError):
    """The gin configuration or the paths it names cannot run."""


def write_operative_config(root_dir: str, writer, step: int):
    """Operative config (what the run actually used) -> root_dir file (atomic) + TensorBoard."""
    text = gin.operative_config_str()
    tf.io.gfile.makedirs(root_dir)
    path = os.path.join(root_dir, "operative_config.gin")
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
    with writer.as_default(step=step):
        # Markdown code block keeps the indentation readable in TensorBoard's text tab.
        tf.summary.text(
            "gin/operative_config", "\n".join("    " + line for line in text.splitlines())
        )
    writer.flush()


def define_gin_flags() -> None:
    """--gin_file and --gin_bindings, the binaries' way in to `parse_gin` (call it from a
    binary's own flag definitions, so importing a module defines no global flags)."""
    flags.DEFINE_multi_string("gin_file", [], "Gin config files (later ones override earlier).")
    flags.DEFINE_multi_string("gin_bindings", [], 'Gin bindings, e.g. "train.max_steps=10".')


def parse_gin(gin_files, gin_bindings):
    """Parses configs with the repo root and each file's directory as include search paths."""
    for d in [_REPO_ROOT] + [os.path.dirname(os.path.abspath(f)) for f in gin_files]:
        gin.add_config_file_search_path(d)
    for f in gin_files:
        if not os.path.exists(f) and not os.path.exists(os.path.join(_REPO_ROOT, f)):
            raise ConfigError(f"--gin_file {f} does not exist")
    files = [f if os.path.exists(f) else os.path.join(_REPO_ROOT, f) for f in gin_files]
    try:
        gin.parse_config_files_and_bindings(files, gin_bindings)
    except (ValueError, KeyError, IOError, SyntaxError) as e:
        raise ConfigError(f"bad gin configuration: {e}") from e
