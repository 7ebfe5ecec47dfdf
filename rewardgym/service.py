"""The verifier service: tasks and verdicts over HTTP/JSON, so verification and sandboxes can run
on other machines than the learner.

Endpoints: ``GET /health``, ``GET /envs``, ``POST /reset`` (``{env_id, seeds | indices, kwargs}``
-> ``{tasks}``), ``POST /score`` (``{env_id, completions, tasks, kwargs}`` -> ``{verdicts}``).
Requests are bounded in size and batch length; at most ``max_concurrency`` are served at once
and the rest get 503 (the client retries with back-off); SIGTERM/SIGINT stop accepting and
finish the requests in flight.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence

from .core.env import TextEnv
from .core.types import Task, Verdict


class ServiceError(RuntimeError):
    """An error answered by the service (status and message) or a service that cannot be reached."""

    def __init__(self, status: int, message: str):
        super().__init__(f"verifier service: {status}: {message}")
        self.status = status


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Limits:
    max_request_bytes: int = 64 * 1024 * 1024
    max_batch: int = 8192
    max_concurrency: int = 8


class VerifierService:
    """Owns the env instances (one per id and kwargs) and answers the endpoints' JSON."""

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self._envs: dict[str, TextEnv] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.limits.max_concurrency)
        self.in_flight = 0

    def env(self, env_id: Any, kwargs: Any) -> TextEnv:
        import rewardgym

        if not isinstance(env_id, str):
            raise _BadRequest(400, "field 'env_id' must be a string")
        if not isinstance(kwargs, dict):
            raise _BadRequest(400, "field 'kwargs' must be an object")
        if "verifier" in kwargs:
            raise _BadRequest(400, "kwargs may not name a verifier: the service uses the registered one")
        key = json.dumps([env_id, kwargs], sort_keys=True)
        with self._lock:
            if key not in self._envs:
                try:
                    self._envs[key] = rewardgym.make(env_id, **kwargs).unwrapped
                except Exception as exc:  # unknown id, bad kwargs, missing data: the caller's error
                    raise _BadRequest(404 if "unknown environment" in str(exc) else 400, str(exc)) from exc
            return self._envs[key]

    def handle(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        import rewardgym

        if method == "GET" and path == "/health":
            return {"status": "ok", "version": rewardgym.__version__, "in_flight": self.in_flight}
        if method == "GET" and path == "/envs":
            return {"envs": [{"id": e.id, "description": e.description, "tags": list(e.tags)} for e in rewardgym.list_envs()]}
        if method == "POST" and path == "/reset":
            return self._reset(body or {})
        if method == "POST" and path == "/score":
            return self._score(body or {})
        raise _BadRequest(404, f"no endpoint {method} {path}")

    def _batch(self, body: dict[str, Any], name: str) -> list:
        value = body.get(name)
        if not isinstance(value, list):
            raise _BadRequest(400, f"field {name!r} must be a list")
        if len(value) > self.limits.max_batch:
            raise _BadRequest(413, f"field {name!r} has {len(value)} items, limit {self.limits.max_batch}")
        return value

    def _reset(self, body: dict[str, Any]) -> dict[str, Any]:
        env = self.env(body.get("env_id"), body.get("kwargs", {}))
        try:
            if "indices" in body:
                tasks = [env.task_at(int(i)) for i in self._batch(body, "indices")]
            else:
                tasks = [env.generate(int(s)) for s in self._batch(body, "seeds")]
        except (TypeError, ValueError, IndexError) as exc:
            raise _BadRequest(400, str(exc)) from exc
        return {"tasks": [t.to_dict() for t in tasks]}

    def _score(self, body: dict[str, Any]) -> dict[str, Any]:
        env = self.env(body.get("env_id"), body.get("kwargs", {}))
        completions, raw_tasks = self._batch(body, "completions"), self._batch(body, "tasks")
        if len(completions) != len(raw_tasks) or not all(isinstance(c, str) for c in completions):
            raise _BadRequest(400, "'completions' must be strings, as many as 'tasks'")
        try:
            tasks = [Task.from_dict(t) for t in raw_tasks]
        except (TypeError, ValueError) as exc:
            raise _BadRequest(400, f"bad task: {exc}") from exc
        verdicts = env.verifier.verify_batch(completions, tasks)
        return {"verdicts": [v.to_dict() for v in verdicts]}

    def make_server(self, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(data)

            def _serve(self, method: str) -> None:
                if not service._slots.acquire(blocking=False):
                    self.close_connection = True
                    return self._answer(503, {"error": "busy: concurrency limit reached, retry later"})
                service.in_flight += 1
                try:
                    body = None
                    if method == "POST":
                        length = int(self.headers.get("Content-Length") or 0)
                        if length > service.limits.max_request_bytes:
                            self.close_connection = True
                            raise _BadRequest(413, f"request of {length} bytes, limit {service.limits.max_request_bytes}")
                        try:
                            body = json.loads(self.rfile.read(length) or b"{}")
                        except ValueError as exc:
                            raise _BadRequest(400, f"body is not JSON: {exc}") from exc
                        if not isinstance(body, dict):
                            raise _BadRequest(400, "body must be a JSON object")
                    self._answer(200, service.handle(method, self.path, body))
                except _BadRequest as exc:
                    self._answer(exc.status, {"error": str(exc)})
                except Exception as exc:  # report, keep serving
                    self._answer(500, {"error": f"{type(exc).__name__}: {exc}"})
                finally:
                    service.in_flight -= 1
                    service._slots.release()

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = False  # server_close() waits for requests in flight
        return server


def serve(host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None) -> None:
    """Run until SIGTERM/SIGINT, then finish the requests in flight and return."""
    server = VerifierService(limits).make_server(host, port)
    stop = lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"rewardgym service on http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


class Client:
    """The service seen from the learner: ``task(s)`` and ``score``, with retries while it is busy."""

    def __init__(self, url: str, *, timeout: float = 600.0, retries: int = 8):
        self.url, self.timeout, self.retries = url.rstrip("/"), timeout, retries

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url + path, data=data, method=method,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                message = json.loads(exc.read() or b"{}").get("error", exc.reason)
                if exc.code != 503 or attempt == self.retries:
                    raise ServiceError(exc.code, message) from None
            except urllib.error.URLError as exc:
                raise ServiceError(0, f"cannot reach {self.url}: {exc.reason}") from None
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def tasks(self, env_id: str, *, seeds: Sequence[int] | None = None, indices: Sequence[int] | None = None,
              kwargs: dict[str, Any] | None = None) -> list[Task]:
        body: dict[str, Any] = {"env_id": env_id, "kwargs": kwargs or {}}
        body.update({"indices": list(indices)} if indices is not None else {"seeds": list(seeds or [])})
        return [Task.from_dict(t) for t in self._call("POST", "/reset", body)["tasks"]]

    def score(self, env_id: str, completions: Sequence[str], tasks: Sequence[Task],
              kwargs: dict[str, Any] | None = None) -> list[Verdict]:
        body = {"env_id": env_id, "kwargs": kwargs or {}, "completions": list(completions),
                "tasks": [t.to_dict() for t in tasks]}
        return [Verdict(**v) for v in self._call("POST", "/score", body)["verdicts"]]
