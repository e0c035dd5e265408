"""`hyv serve` as its clients meet it: a real server process on 127.0.0.1 with the bundled demo model, its HTTP
API over urllib, a real SIGKILL and restart, and concurrent clients."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from render.files.artifacts import read_manifest
from render.files.video import read_mp4
from tests.conftest import Cli
from tests.serve_harness import Server

SMALL = {"frames": 5, "height": 32, "width": 32, "steps": 12}  # for the tests that make many videos


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve")
    s = Server(root / "work", root / "cache")
    try:
        yield s
    finally:
        assert s.stop() == 0, s.log()


def _latents_manifest(video: dict[str, Any]) -> dict[str, Any]:
    return read_manifest(Path(video["latents"]), "latents")[1]


STEPS = 300  # the first job's: ~2 ms a step on a fast machine, so ~6 of the 10-a-second events fall in the render


def test_submit_progress_and_fetch(server: Server) -> None:
    prompt = "a red circle moves up on a black background"
    status, payload, headers = server.request("POST", "/api/jobs", {"prompt": prompt, "seed": 1, "steps": STEPS})
    assert status == 202 and payload["created"] and payload["job"]["state"] == "queued"
    job_id = payload["job"]["id"]
    events = [e["job"] for e in server.events(f"/api/jobs/{job_id}/events")]
    assert events[-1]["state"] == "done" and events[-1]["progress"]["fraction"] == 1.0
    # per-step progress, seen mid-way (events come at most ten a second)
    steps = [e["progress"] for e in events if e["progress"].get("stage") == "render" and e["progress"]["steps"]]
    assert all(p["steps"] == STEPS and 0 <= p["step"] <= STEPS for p in steps)
    assert any(0 < p["step"] < STEPS for p in steps), steps
    fractions = [e["progress"]["fraction"] for e in events]
    assert fractions == sorted(fractions)
    (video,) = server.job(job_id)["videos"]
    assert video["status"] == "done" and video["rendered"] and video["seed"] == 1

    mp4 = server.get(video["video_url"])
    assert mp4[4:8] == b"ftyp" and Path(video["video"]).read_bytes() == mp4
    assert read_mp4(Path(video["video"]))[0].shape == (17, 64, 64, 3)  # the demo model's defaults
    status, part, headers = server.request("GET", video["video_url"], headers={"Range": "bytes=10-19"})
    assert status == 206 and part == mp4[10:20] and headers["Content-Range"] == f"bytes 10-19/{len(mp4)}"
    manifest = server.get(video["manifest_url"])
    assert (manifest["prompt"], manifest["seed"], manifest["render"]["sampling"]["steps"]) == (prompt, 1, STEPS)

    (entry,) = [v for v in server.get("/api/videos")["videos"] if v["video_url"] == video["video_url"]]
    assert entry["settings"] == {
        "prompt": prompt, "seed": 1, "fps": 8, "frames": 17, "height": 64, "width": 64, "steps": STEPS,
        "guidance": 6.0, "shift": 5.0, "cfg_scale": 1.0, "text_len": 24,
    }  # fmt: skip
    assert server.get("/api/status")["loads"]["transformer"] == 1
    assert server.get("/")[:15] == b"<!doctype html>"


def test_a_job_already_done_returns_at_once(server: Server) -> None:
    a, b = "a blue square moves down on a white background", "a green triangle stays still on a red background"
    first = server.wait(server.submit({"prompt": a, "steps": 4, "seed": 3})["id"])
    assert first["state"] == "done"
    t0 = time.perf_counter()
    # the same videos asked again (a default spelled out, the prompt as a list): the same job, at once
    status, again, _ = server.request("POST", "/api/jobs", {"prompts": [a], "steps": 4, "seed": 3, "frames": 17})
    assert time.perf_counter() - t0 < 2.0
    assert (status, again["created"], again["job"]["id"], again["job"]["state"]) == (200, False, first["id"], "done")
    # a new job sharing one video with it: that video is found on disk, the other is rendered
    both = server.wait(server.submit({"prompts": [a, b], "steps": 4, "seed": 3})["id"])
    assert both["state"] == "done"
    assert [(v["prompt"], v["rendered"]) for v in both["videos"]] == [(a, False), (b, True)]
    assert both["videos"][0]["latents"] == first["videos"][0]["latents"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        ([1, 2], 400, "must be a JSON object"),
        ({"prompt": ""}, 400, "missing or empty prompt"),
        ({"prompt": "a red circle", "frames": 10}, 400, "frames must be 4k+1"),
        ({"prompt": "a red circle", "stepz": 3}, 400, "unknown field 'stepz'"),
        ({"prompt": "a red circle", "steps": "10"}, 400, "`steps` must be an int"),
        ({"prompt": "a red circle", "device": "cuda"}, 400, "unknown field 'device'"),
        ({"prompt": "a", "prompts": ["b"]}, 400, "exactly one of"),
        ({"items": [{"prompt": "a"}, {"prompt": "b", "seed": "7"}]}, 400, "item 2: `seed` must be an integer"),
        ({"items": [{"prompt": "a", "height": 30}]}, 400, "item 1: height must be a positive multiple of 16"),
        ({"prompt": "a", "steps": 4, "stop_at": 9}, 400, "stop-at must be between 1 and steps"),
        ({"prompt": "a", "rewrite": {"mode": "poetic", "endpoint": "http://127.0.0.1:9/v1"}}, 400, "unknown mode"),
        ({"prompt": "a", "rewrite": {"mode": "normal"}}, 400, "rewrite:"),
    ],
)
def test_a_bad_request_is_one_json_error_and_nothing_is_queued(
    server: Server, body: Any, status: int, needle: str
) -> None:
    before = server.get("/api/jobs")["jobs"]
    files = sorted((server.workdir / "serve" / "jobs").iterdir())
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    got, payload, headers = server.request("POST", "/api/jobs", raw=raw)
    assert (got, payload["status"]) == (status, status)
    assert needle in payload["error"] and set(payload) == {"error", "status"}
    assert server.get("/api/jobs")["jobs"] == before
    assert sorted((server.workdir / "serve" / "jobs").iterdir()) == files


def test_other_client_errors(server: Server) -> None:
    plain = {"Content-Type": "text/plain"}
    status, payload, _ = server.request("POST", "/api/jobs", raw=b'{"prompt": "a"}', headers=plain)
    assert status == 415 and "application/json" in payload["error"]
    assert server.request("GET", "/api/jobs/job-999999")[0] == 404
    assert server.request("GET", "/files/videos/..%2Fserve%2Fserver.lock")[0] == 404
    status, payload, _ = server.request("GET", "/api/status", headers={"Host": "evil.example:80"})
    assert status == 403  # a loopback server answers only to its own address (DNS rebinding)
    assert server.request("GET", "/api/jobs?limit=many")[0] == 400
    assert len(server.get("/api/jobs?limit=1")["jobs"]) == 1


def test_cancel_a_running_and_a_queued_job(server: Server) -> None:
    long = server.submit({"prompt": "a white square moves to the left on a green background", "steps": 500})
    end = time.monotonic() + 120
    while not (p := server.job(long["id"])["progress"]).get("step") and time.monotonic() < end:
        time.sleep(0.05)
    assert p["stage"] == "render" and p["step"] >= 1
    queued = server.submit({"prompt": "a black circle moves up on a yellow background", "steps": 4})
    after = server.submit({"prompt": "a yellow triangle moves down on a blue background", "steps": 4})
    status, payload, _ = server.request("POST", f"/api/jobs/{queued['id']}/cancel")
    assert status == 200 and payload["job"]["state"] == "cancelled"  # a queued job: at once
    status, payload, _ = server.request("POST", f"/api/jobs/{long['id']}/cancel")
    assert status == 200 and payload["job"]["cancel"]
    cancelled = server.wait(long["id"], timeout=30)
    assert cancelled["state"] == "cancelled" and cancelled["videos"] == []
    assert server.request("POST", f"/api/jobs/{long['id']}/cancel")[0] == 409
    assert server.wait(after["id"])["state"] == "done"  # the worker goes on
    assert server.job(queued["id"])["videos"] == []
    assert not list((server.workdir / "latents").glob("a-white-square-*.safetensors"))
    assert server.get("/api/status")["loads"]["transformer"] == 1


def test_preview_at_step_k_then_continue(server: Server) -> None:
    body = {"prompt": "a blue triangle moves to the right on a black background", "steps": 8, "stop_at": 3}
    preview = server.wait(server.submit(body)["id"])
    assert preview["state"] == "stopped"
    (v,) = preview["videos"]
    assert v["is_preview"] and v["step"] == 3 and v["video_url"].endswith(".preview.mp4")
    assert read_mp4(Path(v["video"]))[0].shape == (17, 64, 64, 3)
    (entry,) = [e for e in server.get("/api/videos")["videos"] if e["video_url"] == v["video_url"]]
    assert entry["is_preview"] and entry["step"] == 3 and entry["steps"] == 8
    assert server.request("POST", f"/api/jobs/{preview['id']}/continue")[0] == 202
    done = server.wait(server.get("/api/jobs")["jobs"][0]["id"])
    assert done["state"] == "done" and done["request"].get("stop_at") is None
    (final,) = done["videos"]
    assert not final["is_preview"] and _latents_manifest(final)["resumed_from"] == 3  # only steps 4-8 ran
    assert any("continuing from the checkpoint at step 3" in w for w in done["warnings"])
    status, payload, _ = server.request("POST", f"/api/jobs/{done['id']}/continue")
    assert status == 409 and "only a stopped job" in payload["error"]


def test_a_rewrite_that_cannot_reach_its_server_fails_its_job_alone(server: Server) -> None:
    """Both jobs share one batch; the one whose rewrite server is down fails, the other is rendered."""
    down = {"mode": "normal", "endpoint": "http://127.0.0.1:9/v1", "api_model": "m"}
    bad = server.submit({"prompt": "a cat", "rewrite": down, **SMALL})
    good = server.submit({"prompt": "a green circle moves down on a black background", **SMALL})
    bad, good = server.wait(bad["id"]), server.wait(good["id"])
    assert bad["state"] == "failed" and "cannot reach the rewrite server" in bad["error"]
    assert bad["videos"][0]["status"] == "failed"
    assert good["state"] == "done" and good["videos"][0]["rendered"]


def test_token(tmp_path: Path) -> None:
    token = "correct-horse-battery-staple"
    s = Server(tmp_path / "w", tmp_path / "cache", env={"HYV_SERVE_TOKEN": token}, token=token)
    try:
        for headers in ({}, {"Authorization": "Bearer wrong-token-000"}, {"Cookie": "hyv_token=wrong"}):
            status, payload, _ = s.request("GET", "/api/status", headers=headers, auth=False)
            assert status == 401 and "token" in payload["error"]
        status, payload, _ = s.request("POST", "/api/jobs", {"prompt": "a red square"}, auth=False)
        assert status == 401 and s.get("/api/jobs")["jobs"] == []
        assert s.get("/api/status")["jobs"]["queued"] == 0  # with the token
        # the page: /?token=T once sets a cookie and sends the browser to /
        opener = urllib.request.build_opener(_NoRedirect)
        res = opener.open(s.url + f"/?token={token}")
        assert res.status == 303 and res.headers["Location"] == "/"
        cookie = res.headers["Set-Cookie"].split(";")[0]
        assert s.request("GET", "/", headers={"Cookie": cookie}, auth=False)[0] == 200
        assert s.request("GET", f"/?token={token}x", auth=False)[0] == 401
    finally:
        assert s.stop() == 0
    assert token not in s.log() + s.stdout


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kw: Any) -> None:
        return None

    def http_error_303(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        return fp


def test_listening_beyond_loopback_needs_a_token(tmp_path: Path, cli: Cli) -> None:
    r = cli("serve", "--host", "0.0.0.0", "--workdir", tmp_path)
    assert r.exit_code == 2 and "--token" in r.stderr and "hyv serve: http" not in r.stdout
    r = cli("serve", "--host", "0.0.0.0", "--token", "short", "--workdir", tmp_path)
    assert r.exit_code == 2 and "at least 8 characters" in r.stderr and "short" not in r.stderr


def test_sigterm_stops_the_running_batch_and_queues_it_again(tmp_path: Path) -> None:
    # a queued job the model no longer takes (say, written by an older hyv): it fails alone, with the reason
    jobs = tmp_path / "w" / "serve" / "jobs"
    jobs.mkdir(parents=True)
    old = {"id": "job-000001", "key": "job1-x", "request": {"items": [{"prompt": "a"}], "frames": 10},
           "videos_expected": 1}  # fmt: skip
    (jobs / "job-000001.json").write_text(json.dumps(old))
    s = Server(tmp_path / "w", tmp_path / "cache")
    failed = s.wait("job-000001")
    assert failed["state"] == "failed" and "frames must be 4k+1" in failed["error"]
    job = s.submit({"prompt": "a red triangle moves up on a white background", "steps": 500})
    end = time.monotonic() + 120
    while not s.job(job["id"])["progress"].get("step") and time.monotonic() < end:
        time.sleep(0.05)
    assert s.stop() == 0  # SIGTERM: a clean stop
    record = json.loads((jobs / f"{job['id']}.json").read_text())
    assert (record["state"], record["started"]) == ("queued", None)
    assert "1 queued job(s) run at the next start" in s.log()


def test_killed_server_finishes_its_queue_and_renders_nothing_twice(tmp_path: Path) -> None:
    work, cache = tmp_path / "w", tmp_path / "cache"
    prompts = [
        "a red circle moves to the left on a white background",
        "a green square moves up on a black background",
        "a blue circle stays still on a yellow background",
    ]
    s = Server(work, cache)
    first = s.submit({"prompts": prompts, **SMALL})
    end = time.monotonic() + 180
    while time.monotonic() < end:  # the first video rendered, the second one half-way
        p = s.job(first["id"])["progress"]
        if p.get("rendered") == 1 and (p.get("step") or 0) >= 2:
            break
        time.sleep(0.02)
    second = s.submit({"prompt": "a white triangle moves down on a red background", **SMALL})
    done_before = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in (work / "latents").glob("*.safetensors")}
    s.kill()  # SIGKILL: no clean-up at all
    assert len(done_before) == 1 and s.proc.returncode == -9
    assert json.loads((work / "serve" / "jobs" / f"{first['id']}.json").read_text())["state"] == "running"

    s = Server(work, cache)
    try:
        a, b = s.wait(first["id"]), s.wait(second["id"])
        assert "queued again" in s.log()
    finally:
        assert s.stop() == 0
    assert (a["state"], b["state"], a["restarts"], b["restarts"]) == ("done", "done", 1, 0)
    assert [v["rendered"] for v in a["videos"]] == [False, True, True]  # the finished one was found
    for f, stat in done_before.items():
        assert (f.stat().st_ino, f.stat().st_mtime_ns) == stat  # not written again
    assert len(list((work / "latents").glob("*.safetensors"))) == 4
    assert not list(work.rglob("*.partial-*"))


DEMO = [
    f"a {c} {s} {m} on a {bg} background"
    for c, s, m, bg in [
        ("red", "circle", "moves up", "black"),
        ("green", "square", "moves down", "white"),
        ("blue", "triangle", "moves to the left", "yellow"),
        ("yellow", "circle", "moves to the right", "blue"),
        ("white", "square", "stays still", "red"),
        ("black", "triangle", "moves up", "green"),
        ("red", "square", "moves to the left", "blue"),
        ("blue", "circle", "moves down", "white"),
    ]
]


def test_eight_jobs_from_four_clients_dit_loaded_once(tmp_path: Path) -> None:
    s = Server(tmp_path / "w", tmp_path / "cache")
    try:
        barrier, ids, lock = threading.Barrier(4), [], threading.Lock()

        def client(n: int) -> None:
            barrier.wait()
            for prompt in DEMO[2 * n : 2 * n + 2]:
                job = s.submit({"prompt": prompt, **SMALL, "steps": 4})
                with lock:
                    ids.append(job["id"])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        jobs = [s.wait(i) for i in ids]
        status = s.get("/api/status")
        again = [s.request("POST", "/api/jobs", {"prompt": p, **SMALL, "steps": 4}) for p in DEMO]
    finally:
        assert s.stop() == 0
    assert len(set(ids)) == 8 and all(j["state"] == "done" for j in jobs)
    videos = [v for j in jobs for v in j["videos"]]
    assert len(videos) == 8 and all(v["rendered"] for v in videos)
    assert len({v["latents"] for v in videos}) == 8  # eight distinct renders, each made once
    assert status["loads"]["transformer"] == 1 and status["jobs"]["done"] == 8
    assert all(code == 200 and not p["created"] for code, p, _ in again)  # all done: nothing queued again
