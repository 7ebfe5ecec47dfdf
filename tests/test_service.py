"""The verifier service on loopback: endpoints, limits, errors, remote vector env, shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest

import rewardgym
from rewardgym.service import Client, Limits, ServiceError, VerifierService


@pytest.fixture
def server():
    service = VerifierService(Limits(max_request_bytes=200_000, max_batch=50, max_concurrency=2))
    httpd = service.make_server("127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield service, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_health_envs_reset_score(server) -> None:
    _, url = server
    client = Client(url)
    assert client.health()["status"] == "ok"
    tasks = client.tasks("Countdown-v0", seeds=[1, 2])
    local = rewardgym.make("Countdown-v0").unwrapped
    assert tasks == [local.generate(1), local.generate(2)]
    verdicts = client.score("Countdown-v0", [local.reference(tasks[0]), "nope"], tasks)
    assert [v.reward for v in verdicts] == [1.0, 0.0] and verdicts[1].reason == "no_answer"


def test_remote_vector_env_is_transparent(server) -> None:
    _, url = server
    remote = rewardgym.make_vec("Countdown-v0", 4, group_size=2, remote=url)
    local = rewardgym.make_vec("Countdown-v0", 4, group_size=2)
    obs_r, info_r = remote.reset(seed=5)
    obs_l, _ = local.reset(seed=5)
    assert obs_r == obs_l
    single = rewardgym.make("Countdown-v0").unwrapped
    completions = [single.reference(t) for t in info_r["task"][:2]] + ["x", "y"]
    assert list(remote.step(completions)[1]) == list(local.step(completions)[1]) == [1.0, 1.0, 0.0, 0.0]


def test_changed_kwargs_travel_to_the_service(server) -> None:
    _, url = server
    remote = rewardgym.make_vec("Countdown-v0", 2, remote=url, num_numbers=3)
    _, info = remote.reset(seed=0)
    assert len(info["task"][0].meta["numbers"]) == 3


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_errors_are_clear(server) -> None:
    _, url = server
    assert _post(url + "/score", b"{not json")[0] == 400
    status, body = _post(url + "/reset", json.dumps({"env_id": "Nope-v0", "seeds": [1]}).encode())
    assert status == 404 and "unknown environment" in body["error"]
    status, body = _post(url + "/reset", json.dumps({"env_id": "Countdown-v0", "seeds": list(range(51))}).encode())
    assert status == 413 and "limit 50" in body["error"]
    status, body = _post(url + "/score", json.dumps({"env_id": "Countdown-v0", "completions": ["a"] * 2, "tasks": []}).encode())
    assert status == 400
    status, body = _post(url + "/reset", json.dumps({"env_id": "Countdown-v0", "seeds": [1],
                                                     "kwargs": {"verifier": "os:getcwd"}}).encode())
    assert status == 400 and "verifier" in body["error"]
    status, _ = _post(url + "/score", b"x" * 300_000)
    assert status == 413
    with pytest.raises(ServiceError, match="404"):
        Client(url)._call("GET", "/nothing")


def test_concurrency_limit_answers_busy(server) -> None:
    service, url = server
    for _ in range(2):
        service._slots.acquire()
    try:
        with pytest.raises(ServiceError, match="503"):
            Client(url, retries=1).health()
    finally:
        for _ in range(2):
            service._slots.release()
    assert Client(url).health()["status"] == "ok"


def test_unreachable_service() -> None:
    with pytest.raises(ServiceError, match="cannot reach"):
        Client("http://127.0.0.1:9", retries=0).health()


def test_cli_serve_stops_gracefully_on_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rewardgym", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert Client(url).health()["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
