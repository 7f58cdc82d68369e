"""[advice] and [assets.*]: the local model and what engineers tell it about their machines."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edgeslm.settings.base import Section


class AdviceSettings(Section):
    enabled: bool = Field(True, description="Publish advice for alerts (model when available, else rules).")
    model_dir: Path | None = Field(None, description="Folder of an onnxruntime-genai model (genai_config.json "
                                   "inside). Empty: rule-based advice only. Get one with 'edgeslm model pull'.")
    execution_provider: Literal["cpu", "cuda", "dml"] = Field("cpu", description="onnxruntime execution "
                                                              "provider.")
    threads: int = Field(0, ge=0, le=256, description="intra-op threads; 0 = one per CPU core. onnxruntime-genai "
                         "would otherwise use ONE thread, half the speed on a 2-core gateway.")
    max_new_tokens: int = Field(256, ge=8, le=2048, description="Upper bound on generated tokens. The advice "
                                "schema's length limits end a guided answer first (~120 Phi-3 tokens at most); "
                                "a cut answer is invalid JSON and falls back to rules.")
    deadline_s: float = Field(60.0, gt=0, description="Time from alert to advice after which the model is "
                              "stopped and rule-based advice is published instead.")
    queue_size: int = Field(4, ge=1, le=1000, description="Alerts waiting for the model; a newer alert of the "
                            "same asset replaces a waiting one; when full the lowest severity is dropped.")
    guided_json: bool = Field(True, description="Constrain output to the advice JSON schema (guidance).")
    warmup: bool = Field(True, description="Run a short generation at start-up to check the model works.")
    prefix_reuse: bool = Field(True, description="Keep the prompt of the last request in the model's KV cache "
                               "and recompute only the part that differs (system prompt and asset context are "
                               "shared): cuts time to first token by the shared prefix.")
    isolation: Literal["process", "thread"] = Field("process", description="Where generation runs. 'process': "
                                                    "a child process (onnxruntime-genai 0.18 holds the GIL while "
                                                    "it computes, which would stall detection). 'thread': in the "
                                                    "daemon's process (less memory, only for tests/tools).")
    max_signals: int = Field(4, ge=1, le=16, description="Contributing signals shown to the model, strongest "
                             "first; more cost prompt tokens (~25 each).")
    max_prompt_tokens: int = Field(512, ge=64, le=3000, description="Hard cap on prompt tokens; a longer prompt "
                                   "is cut down (fewer signals, shorter notes) before it reaches the model. With "
                                   "max_new_tokens it sizes the KV cache (~0.8 MB per token for Phi-3-mini).")
    fast_forward: bool = Field(True, description="Let guidance append the JSON structure it forces (keys, "
                               "brackets) several tokens per model step instead of one: ~25-30 % fewer decode "
                               "steps for the same answer.")
    load_timeout_s: float = Field(300.0, gt=0, description="Longest wait for the model to load and warm up "
                                  "before the advisor gives up on it and uses rules.")
    partial_interval_s: float = Field(1.0, ge=0, le=60, description="Stream the model's text while it writes: "
                                      "a partial message on <prefix>/<site>/<asset>/advice/partial (QoS 0, live "
                                      "only, never stored) at most this often, and a closing one with final=true. "
                                      "0 = no streaming. The advice message stays the result.")


class SignalContext(Section):
    unit: str = Field("", max_length=32, description="Engineering unit shown in alerts and prompts, e.g. 'degC'.")
    description: str = Field("", max_length=200, description="What the signal measures.")
    low: float | None = Field(None, description="Hard low limit: below it is always an anomaly.")
    high: float | None = Field(None, description="Hard high limit: above it is always an anomaly.")
    soft_low: float | None = Field(None, description="Soft low limit: below it is a low-severity anomaly.")
    soft_high: float | None = Field(None, description="Soft high limit: above it is a low-severity anomaly.")
    expected_interval_s: float | None = Field(None, gt=0, description="Seconds between samples; the signal is "
                                              "stale when none arrives within a few intervals.")

    @model_validator(mode="after")
    def _limits_ordered(self) -> SignalContext:
        for lo_name, hi_name in (("low", "high"), ("soft_low", "soft_high"), ("low", "soft_low"),
                                 ("soft_high", "high")):
            lo, hi = getattr(self, lo_name), getattr(self, hi_name)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{lo_name} ({lo}) must not be above {hi_name} ({hi})")
        return self


class AssetContext(Section):
    machine_type: str = Field("", max_length=100, description="e.g. 'centrifugal pump, 15 kW'.")
    failure_modes: list[str] = Field(default_factory=list, description="Known failure modes, short phrases.")
    notes: str = Field("", max_length=1000, description="Maintenance notes written by engineers.")
    signals: dict[str, SignalContext] = Field(default_factory=dict, description="Per-signal unit and limits.")
