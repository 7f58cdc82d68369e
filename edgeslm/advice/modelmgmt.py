"""`edgeslm model pull` / `edgeslm model verify`: fetch the official Phi-3 ONNX release with
huggingface_hub (resumable, progress bar, every file checked against the hub's sizes and hashes) and
check that a model folder — pulled, or copied in by hand on an air-gapped plant — loads and generates."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("edgeslm.advice.modelmgmt")

REPO_ID = "microsoft/Phi-3-mini-4k-instruct-onnx"
# Variant name → folder of the release repository.
VARIANTS: dict[str, str] = {
    "cpu-int4": "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4",
    "cpu-int4-rtn": "cpu_and_mobile/cpu-int4-rtn-block-32",
    "cuda-int4": "cuda/cuda-int4-rtn-block-32",
    "cuda-fp16": "cuda/cuda-fp16",
    "dml-int4": "directml/directml-int4-awq-block-128",
}
DEFAULT_VARIANT = "cpu-int4"
DEFAULT_DIR = Path("~/.cache/edgeslm/models").expanduser()
REQUIRED_FILES = ("genai_config.json", "tokenizer.json", "tokenizer_config.json")


class ModelError(RuntimeError):
    """A model could not be pulled or verified; the message says what to do."""


@dataclass(frozen=True, slots=True)
class _Expected:
    path: str
    size: int
    sha256: str | None  # LFS files
    git_sha1: str  # git blob id (non-LFS files are checked with it)


def pull_model(variant: str, dest: Path, endpoint: str | None = None, *, revision: str = "main",
               repo_id: str = REPO_ID) -> Path:
    """Download one variant of the Phi-3 release into `dest` and verify it; return the model folder.

    `endpoint` (else $HF_ENDPOINT, else huggingface.co) lets tests and plants use a mirror. An
    interrupted pull resumes: huggingface_hub keeps partial files under dest/.cache and asks for the rest
    with an HTTP Range request."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.hf_api import RepoFile

    if variant not in VARIANTS:
        raise ModelError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    sub = VARIANTS[variant]
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    api = HfApi(endpoint=endpoint)
    try:
        info = api.repo_info(repo_id, revision=revision)
        commit = info.sha or revision
        expected = [_Expected(f.path, f.size, f.lfs.sha256 if f.lfs else None, f.blob_id)
                    for f in api.list_repo_tree(repo_id, path_in_repo=sub, recursive=True, revision=commit)
                    if isinstance(f, RepoFile)]
        if not expected:
            raise ModelError(f"{repo_id}@{commit} has no files under {sub}")
        log.info("model_pull_start", repo=repo_id, variant=variant, commit=commit, files=len(expected),
                 bytes=sum(e.size for e in expected), dest=str(dest))
        t0 = time.monotonic()
        snapshot_download(repo_id, revision=commit, allow_patterns=[f"{sub}/*"], local_dir=str(dest),
                          endpoint=endpoint)
    except ModelError:
        raise
    except HfHubHTTPError as e:
        raise ModelError(f"download from {endpoint or 'huggingface.co'} failed: {e}") from e
    except Exception as e:  # httpx connection/timeouts, disk full: the pull can be resumed
        raise ModelError(f"download from {endpoint or 'huggingface.co'} failed: {type(e).__name__}: {e} "
                         "(run the same command again to resume)") from e
    bad = verify_files(dest, expected)
    if bad:
        raise ModelError("downloaded files do not match the hub: " + "; ".join(bad)
                         + " (delete them and pull again)")
    folder = dest / sub
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelError(f"{folder} lacks {', '.join(missing)}: not an onnxruntime-genai model folder")
    log.info("model_pull_done", folder=str(folder), s=round(time.monotonic() - t0, 1))
    return folder


def verify_files(root: Path, expected: list[_Expected]) -> list[str]:
    """Problems found comparing files under root with the hub's sizes and hashes (empty: all good)."""
    bad = []
    for e in expected:
        p = root / e.path
        if not p.is_file():
            bad.append(f"{e.path} missing")
            continue
        size = p.stat().st_size
        if size != e.size:
            bad.append(f"{e.path} has {size} bytes, expected {e.size}")
            continue
        if e.sha256 is not None:
            if _sha256(p) != e.sha256:
                bad.append(f"{e.path} sha256 mismatch")
        elif _git_blob_sha1(p) != e.git_sha1:
            bad.append(f"{e.path} git blob hash mismatch")
    return bad


def check_folder(model_dir: Path) -> list[str]:
    """Problems with a model folder copied by hand (empty: looks complete). Uses SHA256SUMS if present."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return [f"{model_dir} is not a folder"]
    bad = [f"{f} missing" for f in REQUIRED_FILES if not (model_dir / f).is_file()]
    if not any(model_dir.glob("*.onnx")):
        bad.append("no .onnx file")
    sums = model_dir / "SHA256SUMS"
    if sums.is_file():
        for line in sums.read_text(encoding="utf-8").splitlines():
            digest, _, name = line.strip().partition("  ")
            if not name:
                continue
            p = model_dir / name
            if not p.is_file():
                bad.append(f"{name} missing (listed in SHA256SUMS)")
            elif _sha256(p) != digest:
                bad.append(f"{name} sha256 mismatch (SHA256SUMS)")
    return bad


def verify_model(model_dir: Path, provider: str = "cpu", threads: int = 0, *, max_new: int = 48) -> dict[str, Any]:
    """Load the model, run one short guided advice generation, report load time, speed and memory."""
    from edgeslm.advice.evidence import build_prompt
    from edgeslm.advice.llm import EngineConfig, LlmEngine, rss_mb
    from edgeslm.advice.schema import AdviceRejected, parse_model_output
    from edgeslm.models import AlarmEvent, AlarmState, Severity, SignalEvidence

    model_dir = Path(model_dir).expanduser()
    problems = check_folder(model_dir)
    if problems:
        raise ModelError(f"{model_dir}: " + "; ".join(problems))
    eng = LlmEngine(EngineConfig(model_dir=str(model_dir), provider=provider, threads=threads,
                                 max_new_tokens=max(max_new, 8), prefix_reuse=False))
    info = eng.load(warmup=False)
    now = time.time()
    ev = AlarmEvent(alarm_id="verify", asset="pump-1", state=AlarmState.RAISED, severity=Severity.HIGH, ts=now,
                    started_ts=now - 30, detectors=("zscore",), score=6.0,
                    signals=(SignalEvidence("bearing_temp", 82.0, 80.5, 76.0, 83.0, 61.0, 2.0, 6.0, ("zscore",),
                                            "degC"),))
    try:
        r = eng.generate([build_prompt(ev, None)], deadline=time.monotonic() + 300, max_new=max_new)
    finally:
        eng.close()
    try:
        parse_model_output(r.text)
        valid: bool | str = True
    except AdviceRejected as e:
        valid = str(e) if r.stop == "eos" else f"cut at {max_new} tokens (verify generates a short sample)"
    return {
        "model_dir": str(model_dir), "model": info.name, "provider": provider, "threads": info.threads,
        "load_s": round(info.load_s, 2), "prompt_tokens": r.prompt_tokens, "prefill_tok_s": round(r.prefill_tok_s, 1),
        "ttft_s": round(r.ttft_s, 2), "output_tokens": r.output_tokens, "decode_tok_s": round(r.decode_tok_s, 2),
        "rss_mb": round(max(rss_mb(), r.rss_mb)), "sample": r.text[:400], "schema_valid": valid,
    }


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git_blob_sha1(p: Path) -> str:
    h = hashlib.sha1(f"blob {p.stat().st_size}\0".encode())
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
