"""``burnish serve``: the OpenAI-compatible server."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from burnish.cli.common import API_KEY_ENV, PICKLE_OPT, PRM_KIND_OPT, TEMPLATE_OPT
from burnish.serve.limits import ServeLimits

__all__ = ["kept", "serve_command"]

_LIMITS = ServeLimits()
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def kept(**_: object) -> str:
    return "the server stopped (requests in flight were drained up to --drain-timeout)"


def serve_command(
    model: str = typer.Argument(..., help="Model directory, zoo name, .gguf file or known name."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port (0: any free port)."),
    served_model_name: str | None = typer.Option(
        None, help="The model name clients send (default: MODEL as given)."
    ),
    api_key: str | None = typer.Option(
        None,
        envvar=API_KEY_ENV,
        help=f"Require 'Authorization: Bearer KEY' on /v1/* (env {API_KEY_ENV}).",
    ),
    kv_cache: str = typer.Option(
        "none", help="KV cache every request decodes with: none | kivi | squat | squat_pre."
    ),
    kv_bits: int = typer.Option(2, help="Bits per cached key/value code (2 or 4)."),
    max_tokens_cap: int = typer.Option(_LIMITS.max_tokens, help="Largest max_tokens accepted."),
    max_n: int = typer.Option(_LIMITS.max_n, help="Largest n accepted."),
    max_prompt_tokens: int | None = typer.Option(
        None, help="Longest prompt accepted, in tokens (default: the model's context)."
    ),
    max_body_bytes: int = typer.Option(_LIMITS.max_body_bytes, help="Largest request body."),
    max_queue: int = typer.Option(_LIMITS.max_queue, help="Requests waiting at most (429)."),
    max_batch: int = typer.Option(_LIMITS.max_batch, help="Choices decoded together at most."),
    request_timeout: float = typer.Option(
        _LIMITS.request_timeout, help="Seconds a request may run before it is cancelled (503)."
    ),
    prm: str | None = typer.Option(
        None,
        "--prm",
        help="Reward model for searches (chat requests with 'budget'): a PRM directory or zoo "
        "name, or 'logprob'. Without it only reward-free searches run.",
    ),
    prm_kind: str | None = PRM_KIND_OPT,
    its_algorithm: str = typer.Option(
        "particle_filtering", help="Search run for a 'budget' when the request names none."
    ),
    max_budget: int = typer.Option(_LIMITS.max_budget, help="Largest search budget accepted."),
    drain_timeout: float = typer.Option(
        30.0, help="On SIGTERM / Ctrl-C: seconds to let requests in flight finish."
    ),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N, mps or auto."),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16."),
    allow_pickle: bool = PICKLE_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve MODEL with the OpenAI API (as vLLM serves it): /v1/models, /v1/completions,
    /v1/chat/completions, /health and /metrics (Prometheus).

    Concurrent requests share decode steps (continuous batching). A chat request with the
    extra field 'budget' (and optionally 'its_algorithm') runs that inference-time search and
    returns the selected answer, with the search's record in the response's 'its' field.

    The server binds 127.0.0.1 unless told otherwise with --host. SIGTERM stops accepting
    connections and lets requests in flight finish for up to --drain-timeout seconds."""
    limits = ServeLimits(
        max_tokens=max_tokens_cap,
        max_n=max_n,
        max_prompt_tokens=max_prompt_tokens,
        max_body_bytes=max_body_bytes,
        max_queue=max_queue,
        max_batch=max_batch,
        request_timeout=request_timeout,
        max_budget=max_budget,
    )
    if host not in _LOOPBACK:
        typer.echo(
            f"warning: binding {host}: the server is reachable from other machines"
            + ("" if api_key else " and has no --api-key"),
            err=True,
        )
    sock = _listen(host, port)  # first: a port in use is reported before the model loads
    given = locals()
    app = _build(model, limits, **{k: given[k] for k in _BUILD_ARGS})
    port = sock.getsockname()[1]
    typer.echo(f"serving {app.state.model_name} (kv cache {kv_cache}) on http://{host}:{port}",
               err=True)  # fmt: skip
    _run(app, sock, host, port, log_level, drain_timeout)


_BUILD_ARGS = ("served_model_name", "api_key", "kv_cache", "kv_bits", "prm", "prm_kind")
_BUILD_ARGS += ("its_algorithm", "device", "dtype", "allow_pickle", "chat_template")


def _build(model: str, limits: ServeLimits, **o: object):
    """The app: the model loaded, its engine, the searches' reward model."""
    from burnish.models import load_model
    from burnish.models.zoo import resolve_model
    from burnish.scaling.reward import reward_model
    from burnish.serve import ServeEngine, build_app
    from burnish.serve.its import ITSService

    model_obj, tok = load_model(
        resolve_model(model),
        dtype=o["dtype"],
        device=o["device"],
        allow_pickle=o["allow_pickle"],
        chat_template=o["chat_template"],
    )
    engine = ServeEngine(
        model_obj, tok, o["kv_cache"], o["kv_bits"], limits.max_batch, limits.max_queue
    )
    reward = reward_model(o["prm"], o["device"], o["prm_kind"], o["allow_pickle"])
    its = ITSService(engine, tok, reward, o["its_algorithm"], max_budget=limits.max_budget)
    name = o["served_model_name"] or model
    return build_app(engine, tok, name, limits, o["api_key"], its=its)


def _run(app, sock: socket.socket, host: str, port: int, log_level: str, drain: float) -> None:
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=drain
    )
    uvicorn.Server(config).run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); ConfigError naming the
    address when it cannot be had (in use, no such interface)."""
    from burnish.errors import ConfigError

    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(2048)
    except OSError as e:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port (0: any "
            "free one) or --host"
        ) from None
    return sock
