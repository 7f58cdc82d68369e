"""Advice schema, output validation, evidence check, payload, rules."""

from __future__ import annotations

import json

import pytest

from edgeslm.advice.rules import rule_advice
from edgeslm.advice.schema import (
    AdviceRejected,
    EvidenceCheck,
    ModelAdvice,
    advice_json_schema,
    advice_payload,
    parse_model_output,
)
from edgeslm.models import Severity
from tests.test_advice_helpers import alert, settings, signal

GOOD = {"summary": "Bearing temperature high.", "probable_causes": ["lubrication"],
        "recommended_actions": ["grease bearing"], "urgency": "high", "confidence": 0.7}


def test_schema_bounds_everything() -> None:
    s = advice_json_schema()
    assert s["x-guidance"] == {"whitespace_flexible": False} and s["additionalProperties"] is False
    for name, prop in s["properties"].items():
        if prop.get("type") == "string":
            assert "maxLength" in prop, name
        elif prop.get("type") == "array":
            assert "maxItems" in prop and "maxLength" in prop["items"], name
        else:
            assert "enum" in prop, name


def test_parse_accepts_valid_and_rejects_invalid() -> None:
    assert parse_model_output(json.dumps(GOOD)).urgency == "high"
    for bad, why in [("{", "invalid JSON"), (json.dumps({**GOOD, "urgency": "soon"}), "urgency"),
                     (json.dumps({**GOOD, "extra": 1}), "extra"), (json.dumps({**GOOD, "summary": " "}), "empty"),
                     (json.dumps({**GOOD, "probable_causes": []}), "probable_causes"),
                     # Python's json refuses integers over 4,300 digits with a plain ValueError (no .msg)
                     ('{"confidence": 1' + "0" * 5000 + "}", "invalid JSON")]:
        with pytest.raises(AdviceRejected, match=why):
            parse_model_output(bad)


def test_evidence_check_rejects_only_foreign_known_identifiers() -> None:
    check = EvidenceCheck(["pump-7", "fan-3", "bearing_temp", "motor_current", "temperature"])
    ev = alert("pump-7", signals=(signal("bearing_temp"),))

    def adv(text: str) -> ModelAdvice:
        return ModelAdvice.model_validate({**GOOD, "summary": text})

    check.check(adv("pump-7 bearing_temp is high; check temperature and motor"), ev)
    check.check(adv("random gibberish xq_zz 7-up fan pump motor_currentx"), ev)
    with pytest.raises(AdviceRejected, match="fan-3"):
        check.check(adv("compare with fan-3"), ev)
    with pytest.raises(AdviceRejected, match=r"(?i)motor_current"):
        check.check(adv("Motor_Current looks fine."), ev)


def test_payload_fields() -> None:
    a = rule_advice(alert(), settings().assets["pump-7"], latency_ms=12, reason="no model configured")
    p = advice_payload(a, ts=1.0)
    assert set(p) == {"alert_id", "ts", "asset", "source", "model", "summary", "probable_causes",
                      "recommended_actions", "urgency", "confidence", "latency_ms", "reason"}
    json.dumps(p, allow_nan=False)


@pytest.mark.parametrize("sev", list(Severity))
def test_rule_advice_is_valid_for_any_alert(sev: Severity) -> None:
    for ev in (alert(severity=sev), alert("unknown", sev, signals=()),
               alert(severity=sev, signals=(signal("flow", float("nan"), "", 0, 0),))):
        a = rule_advice(ev, settings().assets.get(ev.asset))
        assert a.source == "rules" and a.urgency == sev.value and a.summary
        assert a.probable_causes and a.recommended_actions
        json.dumps(advice_payload(a), allow_nan=False)
