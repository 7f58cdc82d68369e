"""`model pull` against a local stand-in for the Hugging Face hub, and `model verify` on the fixture.

The stand-in serves the fixture in the hub's layout: /api/models/{repo}/revision/{rev} (repo info),
/api/models/{repo}/tree/{rev}[/{path}] (file list with sizes, git blob ids and LFS sha256), and
/{repo}/resolve/{rev}/{path} (HEAD and GET with ETag, X-Repo-Commit, Range)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from edgeslm.advice.modelmgmt import REPO_ID, VARIANTS, ModelError, check_folder, pull_model, verify_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_FILES = {"model.onnx", "model.onnx.data"}


class StandInHub:
    """A tiny hub: one repo, one commit, the fixture files under one variant folder."""

    def __init__(self, fixture: Path, subfolder: str):
        self.files: dict[str, bytes] = {
            f"{subfolder}/{p.name}": p.read_bytes() for p in sorted(fixture.iterdir())
            if p.is_file() and p.name != "SHA256SUMS"}
        self.files["README.md"] = b"stand-in\n"
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self.truncate_once: set[str] = set()  # paths whose first GET is cut off halfway
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.handle(self, head=True)

            def do_GET(self) -> None:
                hub.handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="stand-in-hub", daemon=True)

    def entry(self, path: str) -> dict[str, object]:
        data = self.files[path]
        e: dict[str, object] = {"type": "file", "path": path, "size": len(data),
                                "oid": hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()}
        if path.rsplit("/", 1)[-1] in LFS_FILES:
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e

    def handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        rng = h.headers.get("Range")
        self.requests.append((h.command, path, rng))
        api = f"/api/models/{REPO_ID}/"
        if path.startswith(api + "revision/"):
            body = {"id": REPO_ID, "modelId": REPO_ID, "sha": COMMIT, "private": False,
                    "siblings": [{"rfilename": p} for p in self.files]}
            return self.json(h, body, head)
        if path.startswith(api + "tree/"):
            rest = path[len(api + "tree/"):]
            rev, _, sub = rest.partition("/")
            if rev not in ("main", COMMIT):
                return self.json(h, {"error": "Revision not found"}, head, 404)
            return self.json(h, [self.entry(p) for p in self.files if p.startswith(sub)], head)
        prefix = f"/{REPO_ID}/resolve/"
        if path.startswith(prefix):
            rev, _, fpath = path[len(prefix):].partition("/")
            if fpath not in self.files or rev not in ("main", COMMIT):
                return self.json(h, {"error": "Entry not found"}, head, 404)
            data = self.files[fpath]
            e = self.entry(fpath)
            etag = e["lfs"]["oid"] if "lfs" in e else e["oid"]  # type: ignore[index]
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            h.send_response(206 if rng else 200)
            h.send_header("X-Repo-Commit", COMMIT)
            h.send_header("ETag", f'"{etag}"')
            if "lfs" in e:
                h.send_header("X-Linked-Etag", f'"{etag}"')
                h.send_header("X-Linked-Size", str(len(data)))
            h.send_header("Accept-Ranges", "bytes")
            if rng:
                h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            h.send_header("Content-Length", str(len(data) - start))
            h.end_headers()
            if head:
                return None
            if fpath in self.truncate_once and not rng:
                self.truncate_once.discard(fpath)
                h.wfile.write(data[: len(data) // 2])
                h.wfile.flush()
                h.close_connection = True
                return None
            h.wfile.write(data[start:])
            return None
        return self.json(h, {"error": "not found"}, head, 404)

    @staticmethod
    def json(h: BaseHTTPRequestHandler, body: object, head: bool, status: int = 200) -> None:
        raw = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        if status == 404:
            h.send_header("X-Error-Code", "EntryNotFound")
        h.end_headers()
        if not head:
            h.wfile.write(raw)


@pytest.fixture
def hub(fixture_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StandInHub]:
    h = StandInHub(fixture_model, VARIANTS["cpu-int4"])
    h.thread.start()
    monkeypatch.setenv("HF_ENDPOINT", h.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no token, no shared cache
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        yield h
    finally:
        h.server.shutdown()
        h.server.server_close()


def test_pull_downloads_and_verifies_the_variant(hub: StandInHub, tmp_path: Path, fixture_model: Path) -> None:
    folder = pull_model("cpu-int4", tmp_path / "models", None)
    assert folder == tmp_path / "models" / VARIANTS["cpu-int4"]
    for f in fixture_model.iterdir():
        if f.name != "SHA256SUMS":
            assert (folder / f.name).read_bytes() == f.read_bytes()
    assert not (tmp_path / "models" / "README.md").exists()  # only the chosen variant
    resolved = [p for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p]
    assert all(COMMIT in p for p in resolved)  # pinned to the commit the hub named
    # A second pull finds everything in place and downloads nothing.
    n = len(resolved)
    assert pull_model("cpu-int4", tmp_path / "models", hub.url) == folder
    assert len([p for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p]) == n


def test_interrupted_download_resumes_with_range(hub: StandInHub, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # Real weights arrive in many 10 MB chunks; shrink the chunk so our 0.8 MB file is several, and the
    # bytes received before the cut are on disk when the client resumes.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    hub.truncate_once.add(f"{VARIANTS['cpu-int4']}/model.onnx.data")
    try:
        folder = pull_model("cpu-int4", tmp_path / "m", None)
    except ModelError:
        folder = pull_model("cpu-int4", tmp_path / "m", None)  # the operator runs it again
    assert any(r and r.startswith("bytes=") and "model.onnx.data" in p for _, p, r in hub.requests)
    assert check_folder(folder) == []


def test_corrupted_download_is_reported(hub: StandInHub, tmp_path: Path) -> None:
    key = f"{VARIANTS['cpu-int4']}/tokenizer.json"
    good = hub.files[key]
    folder = pull_model("cpu-int4", tmp_path / "m", None)
    (folder / "tokenizer.json").write_bytes(good[:-1] + b" ")  # same size, other bytes
    from edgeslm.advice.modelmgmt import _Expected, verify_files

    e = hub.entry(key)
    assert verify_files(tmp_path / "m", [_Expected(key, len(good), None, str(e["oid"]))]) == [
        f"{key} git blob hash mismatch"]


def test_unknown_variant_and_unreachable_hub(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown variant"):
        pull_model("tpu-int1", tmp_path, None)
    with pytest.raises(ModelError):
        pull_model("cpu-int4", tmp_path, "http://127.0.0.1:9")


@pytest.mark.model
def test_verify_reports_load_speed_memory_and_sample(fixture_model: Path, tmp_path: Path) -> None:
    # A folder copied in by hand (air-gapped plant) works the same as a pulled one.
    copy = tmp_path / "copied"
    shutil.copytree(fixture_model, copy)
    r = verify_model(copy, "cpu", 1)
    assert r["model"] == "copied" and r["load_s"] >= 0 and r["rss_mb"] > 0
    assert r["output_tokens"] > 0 and r["decode_tok_s"] > 0 and r["prompt_tokens"] > 0
    assert isinstance(r["sample"], str)
    json.dumps(r)


def test_verify_rejects_incomplete_or_corrupt_folder(fixture_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copied"
    shutil.copytree(fixture_model, copy)
    (copy / "model.onnx.data").write_bytes(b"\0" * 10)
    (copy / "tokenizer.json").unlink()
    problems = check_folder(copy)
    assert "tokenizer.json missing" in problems and "model.onnx.data sha256 mismatch (SHA256SUMS)" in problems
    with pytest.raises(ModelError, match=r"tokenizer\.json missing"):
        verify_model(copy)
