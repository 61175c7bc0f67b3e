"""`planner serve` in a subprocess on a free port for the benchmarks: started, its address read from its first
line, stopped with SIGTERM (which also shuts a Ray backend down)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class ServeProcess:
    """`planner serve ARGS --port 0` with OMP_NUM_THREADS=`threads`; `address` is where it listens, its stderr goes
    to $TMPDIR/planner-`log_name`.log."""

    def __init__(self, serve_args: list[str], log_name: str, *, threads: int = 1, startup_s: float = 300.0,
                 what: str = "server", stop_s: float = 60.0) -> None:
        cmd = [sys.executable, "-m", "planner", "serve", "--port", "0", *serve_args]
        self.stop_s = stop_s
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"planner-{log_name}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                m = re.search(r" on (\S+):(\d+) ", lines.get(timeout=1.0))
            except queue.Empty:
                continue
            if m:
                self.address = f"{m[1]}:{m[2]}"
                return
        self.stop()
        raise SystemExit(f"the {what} did not start within {startup_s:g} s; see {self.log.name}")

    def cpu_s(self) -> float:
        """The server process's CPU seconds so far (user + system)."""
        import psutil

        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(self.stop_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
