"""`planner serve --model NAME [--backend asyncio|ray]`: run the cloud server (tails + shared decoder) until
SIGTERM/SIGINT; with `--backend ray` the compute runs on Ray Serve replicas behind the same TCP front."""

from __future__ import annotations

import os
import re
import sys

from planner.cli import checks as check
from planner.cli._model import add_model_args, add_quantizer_arg
from planner.config import DEFAULT_BATCH_DELAY_MS, DEFAULT_BATCH_MAX
from planner.devices import DEVICE_HELP
from planner.errors import PlannerError
from planner.runtime.options import RUNTIMES, ServerOptions

RAY_FRONT_WORKERS = 64
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def read_size(text: str) -> int | float:
    """'64MiB', '512KB', '1000' -> bytes (B, KB/MB/GB decimal, KiB/MiB/GiB binary); a float when not whole (the
    option's rule refuses it)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m and m.group(2).lower()
    if not m or unit not in _UNITS:
        raise PlannerError(f"bad size {text!r}: expected a number with B, KB, MB, GB, KiB, MiB or GiB")
    size = float(m.group(1)) * _UNITS[unit]
    return int(size) if size.is_integer() else size


def parse_size(text: str) -> int:
    """A size of at least one whole byte (see `read_size`)."""
    size = read_size(text)
    if size < 1 or not isinstance(size, int):
        raise PlannerError(f"size {text!r} must be a whole number of bytes, at least 1")
    return size


def _server(name: str, **kw) -> dict:
    """argparse keywords of the flag for ServerOptions field `name`: its rule as the type, its default."""
    return {"type": check.option(ServerOptions, name), "default": check.default(ServerOptions, name), **kw}


def _size(name: str, **kw) -> dict:
    """The same for a size field, read as '64MiB', '512KB' or bytes."""
    return _server(name, type=check.option(ServerOptions, name, read_size), **kw)


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the cloud server for a model (tails + shared decoder)")
    add_model_args(p)
    p.add_argument("--host", default=check.default(ServerOptions, "host"), help="address to bind (default: loopback only)")
    p.add_argument("--port", **_server("port", help="TCP port (0: any free port)"))
    p.add_argument("--max-frame", **_size("max_frame", help="largest request accepted, e.g. 64MiB (64MiB)"))
    p.add_argument("--max-batch", **_server("max_batch", help="most inputs one request may carry, checked before "
                                                             "decoding (default %(default)s)"))
    p.add_argument("--max-reply", **_size("max_reply", help="largest reply sent (default 16MiB)"))
    p.add_argument("--compute-timeout", **_server("compute_timeout", help="seconds from a request's arrival to its "
                                                  "answer before it gets a TIMEOUT error (%(default)s)"))
    p.add_argument("--max-connections", **_server("max_connections", help="open connections at most; when full the "
                                                  "one idle the longest is closed (%(default)s)"))
    p.add_argument("--max-unauthenticated", **_server("max_unauthenticated", help="connections still in their TLS "
                                                      "handshake or waiting for their HELLO at most; the oldest is "
                                                      "dropped (%(default)s)"))
    p.add_argument("--workers", **_server("workers", help="compute threads (default: CPU cores)"))
    p.add_argument("--batch-delay-ms", type=check.non_negative_number, default=DEFAULT_BATCH_DELAY_MS,
                   help="dynamic batching: requests arriving within this many ms of a batch's first one run their "
                        f"decoder + tail together, per cut and bitwidth (0: off; default {DEFAULT_BATCH_DELAY_MS:g}; "
                        "with --backend ray in each replica, through @serve.batch)")
    p.add_argument("--batch-max", type=check.int_at_least(1), default=DEFAULT_BATCH_MAX,
                   help=f"most inputs in one dynamic batch (default {DEFAULT_BATCH_MAX})")
    p.add_argument("--token", default=os.environ.get("PLANNER_TOKEN"),
                   help="shared token every client must present (default: $PLANNER_TOKEN)")
    p.add_argument("--tls-cert", type=check.readable_file, default=None, metavar="FILE",
                   help="serve TLS with this certificate (PEM; needs --tls-key)")
    p.add_argument("--tls-key", type=check.readable_file, default=None, metavar="FILE",
                   help="private key of --tls-cert (PEM)")
    p.add_argument("--read-timeout", **_server("read_timeout", help="seconds a client has for a whole frame (and "
                                               "for its HELLO after connecting)"))
    p.add_argument("--idle-timeout", **_server("idle_timeout", help="seconds an idle connection is kept"))
    add_quantizer_arg(p)
    p.add_argument("--autoencoder", default=None, metavar="FILE|shared|independent|none",
                   help="autoencoder to decode with: a file from `planner train-ae --out`, a zoo model's committed "
                        "shared/independent one, or none (raw features only); default shared for the zoo, else none")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch",
                   help="what runs decoder + tails: PyTorch eager (default) or ONNX Runtime on the graphs of --onnx")
    p.add_argument("--onnx", default=None, metavar="DIR", help="export folder from `planner export`")
    p.add_argument("--device", type=check.device, default="auto", help=DEVICE_HELP + " (the asyncio backend)")
    p.add_argument("--backend", choices=("asyncio", "ray"), default="asyncio",
                   help="compute in this process (asyncio, default) or on Ray Serve replicas (needs planner[ray])")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--replicas", type=check.int_at_least(1), default=None, help="Ray backend: fixed number of replicas (default 1)")
    scale.add_argument("--autoscale", default=None, metavar="MIN:MAX",
                       help="Ray backend: autoscale between MIN and MAX replicas on ongoing requests")
    p.add_argument("--address", default=None,
                   help="Ray backend: cluster to join ('auto' or ray://HOST:PORT; default: start a local Ray)")
    p.add_argument("--replica-cpus", type=check.positive_number, default=1.0, help="Ray backend: CPUs reserved per replica (1)")
    p.set_defaults(func=run)


def _options(args) -> ServerOptions:
    """The server options the flags ask for, checked before anything loads."""
    return ServerOptions(host=args.host, port=args.port, max_frame=args.max_frame, workers=args.workers,
                         token=args.token, read_timeout=args.read_timeout, idle_timeout=args.idle_timeout,
                         max_connections=args.max_connections, max_unauthenticated=args.max_unauthenticated,
                         max_batch=args.max_batch, max_reply=args.max_reply, compute_timeout=args.compute_timeout)


def run(args) -> int:
    import logging

    if args.backend != "ray" and (args.replicas is not None or args.autoscale or args.address):
        raise PlannerError("--replicas, --autoscale and --address need --backend ray")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise PlannerError("--tls-cert and --tls-key go together")
    if args.backend == "ray" and (args.runtime != "torch" or args.onnx):
        raise PlannerError("--runtime onnxruntime runs in this process: use it with --backend asyncio")
    from planner.devices import resolve_device

    device = resolve_device(args.device)  # before the model loads: a missing GPU is one line
    cpu_only = "--backend ray" if args.backend == "ray" else "--runtime onnxruntime" if args.runtime != "torch" else None
    if cpu_only and device.type != "cpu":
        if args.device != "auto":
            raise PlannerError(f"{cpu_only} runs on the CPU: use --device cpu (or auto)")
        device = resolve_device("cpu")

    from planner.runtime.batching import BatchSettings
    from planner.runtime.server import CloudServer, check_bindable

    batching = BatchSettings(args.batch_delay_ms, args.batch_max)  # Ray: in each replica (@serve.batch), not the front
    from planner.runtime.tls import is_loopback, server_context

    options = _options(args)
    tls = server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    check_bindable(args.host, args.port)  # before the model loads: a port in use is one line, not a traceback

    try:
        from planner.runtime.handlers import make_cloud_handler
    except ModuleNotFoundError as exc:
        if exc.name != "planner.runtime.handlers":
            raise
        raise PlannerError("this build has no model handlers (planner.runtime.handlers is missing)") from exc

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not is_loopback(args.host) and not args.token:
        print(f"planner serve: warning: listening on {args.host} without --token", file=sys.stderr)
    elif not is_loopback(args.host) and tls is None:
        print(f"planner serve: warning: listening on {args.host} without TLS: the token and every feature travel "
              "in cleartext (add --tls-cert/--tls-key)", file=sys.stderr)
    from planner.cli._model import model_from_args

    loaded = model_from_args(args)
    autoencoder = args.autoencoder or ("shared" if loaded.zoo else None)
    autoencoder = None if autoencoder == "none" else autoencoder
    if args.backend == "ray" and not (loaded.zoo and autoencoder in (None, "shared", "independent")):
        raise PlannerError("--backend ray serves zoo models with their committed autoencoders; use the asyncio "
                           "backend for your own model or autoencoder file")
    backend, where = None, None
    if args.backend == "ray":
        from planner.runtime.ray_backend import RayBackend, parse_autoscale

        backend = RayBackend(args.model, autoencoder, replicas=1 if args.replicas is None else args.replicas, address=args.address,
                             autoscale=parse_autoscale(args.autoscale) if args.autoscale else None,
                             replica_cpus=args.replica_cpus, batching=batching)
        options = options.updated(workers=options.workers or RAY_FRONT_WORKERS)  # the front's threads only wait
        where = (f"Ray Serve, autoscale {args.autoscale}" if args.autoscale else
                 f"Ray Serve, {backend.replicas} replicas")
    try:
        handler = backend.start() if backend else make_cloud_handler(loaded, autoencoder, runtime=args.runtime,
                                                                           onnx=args.onnx, quantizer=args.quantizer,
                                                                           device=device)
        server = CloudServer(handler, options=options, ssl=tls, batching=None if backend else batching)
        where = f"{where or f'{server.workers} workers'}, {args.runtime} on {device}" + (
            f", batching {batching.delay_ms:g} ms / {batching.max_inputs}" if batching.enabled else "")
        server.serve_forever(on_ready=lambda port: print(
            f"planner serve: {args.model} on {args.host}:{port} ({where}{', TLS' if tls else ''})", flush=True))
    finally:
        if backend is not None:
            backend.close()
    return 0
