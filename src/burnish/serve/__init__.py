"""``burnish serve``: an OpenAI-compatible server (the API as vLLM serves it).

- :mod:`~burnish.serve.protocol`: pydantic models of requests, responses and errors;
- :mod:`~burnish.serve.engine`: continuous batching on the in-process model (a worker thread);
- :mod:`~burnish.serve.serving`, :mod:`~burnish.serve.completions`, :mod:`~burnish.serve.chat`:
  the serving logic per endpoint (caps, timeouts, cancellation, response shapes);
- :mod:`~burnish.serve.app`: the app factory and its thin routes, auth, limits, metrics.

Importing the package is cheap (no torch, no FastAPI); the names below load on first use.
"""

from burnish.lazy import lazy_attributes

__all__ = ["SamplingParams", "ServeEngine", "ServeLimits", "build_app"]

__getattr__ = lazy_attributes(
    __name__,
    {
        "SamplingParams": "burnish.serve.engine",
        "ServeEngine": "burnish.serve.engine",
        "ServeLimits": "burnish.serve.limits",
        "build_app": "burnish.serve.app",
    },
)
