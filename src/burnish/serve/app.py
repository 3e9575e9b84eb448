"""The app factory: routes, authentication, body-size limit, metrics and OpenAI-shaped errors.

State lives on ``app.state`` (the engine, the serving objects, the metrics), never in module
globals, so several apps can live in one process (tests do that).
"""

from __future__ import annotations

import secrets
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from transformers import PreTrainedTokenizerBase

from burnish import __version__
from burnish.serve.chat import ChatServing
from burnish.serve.completions import CompletionServing
from burnish.serve.engine import ServeEngine
from burnish.serve.its import ITSService
from burnish.serve.limits import ServeLimits
from burnish.serve.metrics import ServeMetrics
from burnish.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)
from burnish.serve.serving import APIError

__all__ = ["build_app"]

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def build_app(
    engine: ServeEngine,
    tokenizer: PreTrainedTokenizerBase,
    model_name: str,
    limits: ServeLimits | None = None,
    api_key: str | None = None,
    close_engine: bool = True,
    its: ITSService | None = None,
) -> FastAPI:
    """The OpenAI-compatible app over ``engine``; ``api_key`` (if any) is required as a Bearer
    token on ``/v1/*``; ``close_engine``: close the engine when the app shuts down; ``its``:
    the searches chat requests with a ``budget`` run (None: such requests are refused)."""
    limits = limits or ServeLimits()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if close_engine:
            engine.close()

    app = FastAPI(title="burnish serve", version=__version__, lifespan=lifespan)
    app.state.engine = engine
    app.state.model_name = model_name
    app.state.completions = CompletionServing(engine, tokenizer, model_name, limits)
    app.state.chat = ChatServing(engine, tokenizer, model_name, limits, its=its)
    app.state.metrics = ServeMetrics(engine)
    app.state.api_key = api_key
    _errors(app)
    app.add_middleware(_Guard, metrics=app.state.metrics, max_body=limits.max_body_bytes)
    _routes(app)
    return app


def _authorize(request: Request) -> None:
    key = request.app.state.api_key
    if key is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), key):
        raise APIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'")


def _routes(app: FastAPI) -> None:
    auth = [Depends(_authorize)]

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("")

    @app.get("/metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        body = generate_latest(request.app.state.metrics.registry)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=auth)
    async def models(request: Request) -> ModelList:
        st = request.app.state
        card = ModelCard(id=st.model_name, root=st.model_name, max_model_len=st.engine.context)
        return ModelList(data=[card])

    @app.post("/tokenize", dependencies=auth)
    async def tokenize(body: TokenizeRequest, request: Request) -> TokenizeResponse:
        """vLLM's token counter: the prompt's ids under the served model's tokenizer."""
        st = request.app.state
        if body.model is not None:
            st.completions.check_model(body.model)
        ids = st.completions.tokenizer(body.prompt, add_special_tokens=body.add_special_tokens)
        tokens = list(ids["input_ids"])
        return TokenizeResponse(count=len(tokens), max_model_len=st.engine.context, tokens=tokens)

    @app.post("/v1/completions", dependencies=auth)
    async def completions(body: CompletionRequest, request: Request) -> Any:
        return await _answer(request.app.state.completions, body, request)

    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat(body: ChatCompletionRequest, request: Request) -> Any:
        return await _answer(request.app.state.chat, body, request)


async def _answer(
    serving: CompletionServing | ChatServing,
    body: CompletionRequest | ChatCompletionRequest,
    request: Request,
) -> Any:
    """The endpoint's answer: an SSE stream, or the whole response."""
    if body.stream:
        chunks = serving.stream(body, request.is_disconnected)
        return StreamingResponse(chunks, media_type="text/event-stream", headers=_SSE_HEADERS)
    return await serving.complete(body, request.is_disconnected)


def _error_response(e: APIError) -> JSONResponse:
    return JSONResponse(e.body().model_dump(), status_code=e.status)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, e: APIError) -> JSONResponse:
        return _error_response(e)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        msg = f"{where}: {first.get('msg', 'invalid')}"
        if len(errs) > 1:
            msg += f" (and {len(errs) - 1} more problem(s))"
        return _error_response(APIError(422, msg, where))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error_response(APIError(e.status_code, str(e.detail)))

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception) -> JSONResponse:
        return _error_response(APIError(500, f"internal error: {type(e).__name__}: {e}"))


class _Guard:
    """ASGI middleware: refuse bodies over ``max_body`` bytes (413) and record each request's
    status and latency (to the last byte, streams included)."""

    def __init__(self, app: Any, metrics: ServeMetrics, max_body: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, path, status = time.perf_counter(), scope.get("path", ""), [500]
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._too_large(scope, receive, send, status)
        else:
            seen = [0]

            async def counted() -> dict:
                message = await receive()
                if message["type"] == "http.request":
                    seen[0] += len(message.get("body", b""))
                    if seen[0] > self.max_body:
                        raise APIError(413, self._message())
                return message

            async def sending(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            await self.app(scope, counted, sending)
        if path.startswith("/v1/"):
            self.metrics.requests.labels(path, str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)

    def _message(self) -> str:
        return f"the request body is larger than this server's limit of {self.max_body} bytes"

    async def _too_large(self, scope: dict, receive: Any, send: Any, status: list) -> None:
        status[0] = 413
        response = _error_response(APIError(413, self._message()))
        await response(scope, receive, send)
