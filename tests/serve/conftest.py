"""Servers for the serve tests: ``burnish serve`` in a subprocess on a free loopback port, and
an in-process app on a uvicorn thread (for limits that need their own settings)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

MODEL = "arith-policy"
KEY = "sk-burnish-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout} s")


def metric(server, name: str) -> float:
    """A value the server's /metrics reports (Prometheus text)."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def greedy(engine, prompt: str):
    """The particle a search engine's greedy steps give for ``prompt``, to the end."""
    from burnish.scaling.particles import Problem

    problem = Problem(prompt)
    parts = await engine.start(problem, 1)
    while not parts[0].finished:
        parts = await engine.extend(problem, parts, 0.0)
    return parts[0]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen | None = None
    engine: object | None = None

    @property
    def base(self) -> str:
        return self.url + "/v1"


@contextmanager
def subprocess_server(*args: str) -> Iterator[Server]:
    """``burnish serve`` on a free port; SIGTERM at the end (a bounded wait, then kill)."""
    port = free_port()
    env = {**os.environ, "BURNISH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "burnish", "serve", MODEL, "--port", str(port), *args]
    cmd += ["--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield Server(url, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def thread_server(model, tok, **engine_and_limits: object) -> Iterator[Server]:
    """The app over an in-process engine, served by uvicorn on a thread (free port)."""
    import uvicorn

    from burnish.serve import ServeEngine, ServeLimits, build_app

    engine_keys = {"kv_cache", "kv_bits"}
    limits = ServeLimits(**{k: v for k, v in engine_and_limits.items() if k not in engine_keys})
    engine = ServeEngine(
        model,
        tok,
        max_batch=limits.max_batch,
        max_queue=limits.max_queue,
        **{k: v for k, v in engine_and_limits.items() if k in engine_keys},
    )
    app = build_app(engine, tok, MODEL, limits)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield Server(url, engine=engine)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def policy():
    """The zoo policy served in the tests, loaded in this process (for reference answers)."""
    from burnish.models import load_model
    from burnish.models.zoo import resolve_model

    return load_model(resolve_model(MODEL))


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """``burnish serve arith-policy`` with an API key and small caps (one for every module
    that uses it: a server start costs ~7 s here)."""
    caps = ["--max-tokens-cap", "128", "--max-n", "4", "--max-prompt-tokens", "300"]
    caps += ["--max-body-bytes", "20000", "--max-batch", "64"]
    with subprocess_server("--api-key", KEY, *caps) as s:
        yield s


@pytest.fixture(scope="session")
def client(server: Server):
    from openai import OpenAI

    return OpenAI(base_url=server.base, api_key=KEY, max_retries=0, timeout=120)
