"""A cloud server in a child process on this machine, for the demo, benchmarks and tests: started on a free
loopback port, killable and restartable on the same port (fault runs), always cleaned up.

    python -m planner.runtime.local MODEL [--autoencoder shared|independent|none] [--threads T] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from planner.errors import PlannerError
from planner.types import AutoencoderKind


def serve(model: str, autoencoder: str | None, port: int = 0, threads: int = 1, workers: int = 2) -> None:
    """Child-process entry: the model's cloud handler on 127.0.0.1:port until SIGTERM; prints 'ready PORT'."""
    import torch

    from planner.runtime.handlers import make_cloud_handler
    from planner.runtime.server import CloudServer

    torch.set_num_threads(threads)
    handler = make_cloud_handler(model, AutoencoderKind.weights(autoencoder))
    CloudServer(handler, port=port, workers=workers).serve_forever(on_ready=lambda p: print("ready", p, flush=True))


class ServerProcess:
    """`serve` in a child process. `start()` returns the port; `kill()` (SIGKILL) then `start()` reuses it."""

    def __init__(self, model: str, autoencoder: str | None = AutoencoderKind.SHARED, threads: int = 1, workers: int = 2,
                 cpus: set[int] | None = None) -> None:
        self.args = [sys.executable, "-m", "planner.runtime.local", model, "--autoencoder", autoencoder or AutoencoderKind.NONE,
                     "--threads", str(threads), "--workers", str(workers)]
        self.cpus = cpus
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> int:
        pre = (lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None
        self.proc = subprocess.Popen([*self.args, "--port", str(self.port)], stdout=subprocess.PIPE, text=True,
                                     preexec_fn=pre)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("ready"):
                self.port = int(line.split()[1])
                return self.port
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise PlannerError(f"the local cloud server did not start (exit code {self.proc.returncode}); "
                           f"try `{' '.join(self.args[1:])}` by hand to see why")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m planner.runtime.local", description="a local cloud server")
    p.add_argument("model")
    p.add_argument("--autoencoder", default=AutoencoderKind.SHARED, choices=AutoencoderKind.choices())
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    serve(a.model, a.autoencoder, a.port, a.threads, a.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
