"""Config loading: every error names the key, the bad value and what is expected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeslm.cli import main
from edgeslm.settings import EX_CONFIG, ConfigError, load_settings
from edgeslm.settings.example import render_example

REPO = Path(__file__).resolve().parents[1]
MINIMAL = '[[subscriptions]]\ntopic = "f/+/telemetry"\n'


def write(tmp_path: Path, text: str | bytes, name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_settings(path)
    return ei.value.problems


def test_shipped_example_is_complete_and_current() -> None:
    # The example is generated from the settings tree: regenerate with
    # `edgeslm check-config --example > config/edgeslm.toml` after changing a setting.
    assert (REPO / "config" / "edgeslm.toml").read_text() == render_example()
    s = load_settings(REPO / "config" / "edgeslm.toml")
    assert s.subscriptions[0].topic == "factory/+/telemetry"


def test_bad_port_names_key_value_and_range(tmp_path: Path) -> None:
    msgs = problems(write(tmp_path, MINIMAL + "[mqtt]\nport = 70000\n"))
    assert msgs == ["mqtt.port: Input should be less than or equal to 65535 (got 70000)"]


def test_unknown_key_is_an_error_with_its_path(tmp_path: Path) -> None:
    msgs = problems(write(tmp_path, MINIMAL + "[mqtt]\nhots = 'x'\n"))
    assert msgs == ["mqtt.hots: unknown key (misspelt, or in the wrong [table]?)"]


def test_missing_mapping_field_and_bad_source(tmp_path: Path) -> None:
    msgs = problems(write(tmp_path, '[[subscriptions]]\ncodec = "json"\n[subscriptions.json]\nasset = "seg2"\n'))
    assert "subscriptions[0].topic: required key is missing" in msgs
    assert "subscriptions[0].json.asset: expected 'topic:N', 'field:NAME' or 'const:ID' (got 'seg2')" in msgs


def test_mapping_for_another_codec_is_rejected(tmp_path: Path) -> None:
    msgs = problems(write(tmp_path, '[[subscriptions]]\ntopic = "a/#"\ncodec = "plain"\n[subscriptions.json]\n'))
    assert msgs == ["subscriptions[0]: mapping 'json' given but codec is 'plain'"]


def test_no_subscriptions_is_explained(tmp_path: Path) -> None:
    msgs = problems(write(tmp_path, "[mqtt]\nport = 1883\n"))
    assert msgs == ["(top level): no [[subscriptions]]: add at least one topic filter to read telemetry from"]


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    msgs = problems(write(tmp_path, MINIMAL + "[mqtt]\nport = 0\nkeepalive_s = 'x'\n[gateway]\nsite = 'a/b'\n"))
    assert len(msgs) == 3


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "file is empty"),
    (b"[mqtt\nport=1", "not valid TOML"),
    (b"[mqtt]\nport = 1\nport = 2\n", "not valid TOML"),  # duplicate keys
    (b"[gateway]\nname = \"\xff\xfe\"\n", "not valid UTF-8"),
])
def test_unreadable_files_give_one_clear_line(tmp_path: Path, content: bytes, expected: str) -> None:
    msgs = problems(write(tmp_path, content))
    assert len(msgs) == 1 and expected in msgs[0]


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, b"\xef\xbb\xbf" + MINIMAL.replace("\n", "\r\n").encode()))
    assert s.subscriptions[0].topic == "f/+/telemetry"


def test_missing_file_and_symlink_loop(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml") == ["file not found"]
    loop = tmp_path / "loop.toml"
    os.symlink(loop, loop)
    assert "cannot read" in problems(loop)[0]


def test_env_overrides_file_with_nested_delimiter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESLM_MQTT__PORT", "1884")
    s = load_settings(write(tmp_path, MINIMAL + "[mqtt]\nport = 1883\n"))
    assert s.mqtt.port == 1884


def test_bad_env_value_is_reported_like_a_file_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESLM_MQTT__PORT", "abc")
    msgs = problems(write(tmp_path, MINIMAL))
    assert msgs[0].startswith("mqtt.port: Input should be a valid integer")


def test_password_from_file_and_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw = write(tmp_path, "s3cret\n", "pw")
    s = load_settings(write(tmp_path, MINIMAL + f"[mqtt]\nusername = 'u'\npassword_file = '{pw}'\n"))
    assert s.mqtt_password() == "s3cret"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("fromcred\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    s2 = load_settings(write(tmp_path, MINIMAL + "[mqtt]\nusername = 'u'\n"))
    assert s2.mqtt_password() == "fromcred"


def test_password_never_echoed_in_errors(tmp_path: Path) -> None:
    msgs = problems(write(tmp_path, MINIMAL + "[mqtt]\npassword = 12345678\n"))
    assert all("12345678" not in m for m in msgs)


def test_check_config_cli_ok_and_exit_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(REPO / "config" / "edgeslm.toml")]) == 0
    assert capsys.readouterr().out.startswith("OK\n")
    bad = write(tmp_path, MINIMAL + "[mqtt]\nport = -1\n")
    assert main(["check-config", str(bad)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "mqtt.port: Input should be greater than or equal to 1 (got -1)" in err


def test_run_refuses_invalid_config_with_same_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, MINIMAL + "[mqtt]\nport = -1\n")
    assert main(["run", "--config", str(bad)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "mqtt.port: Input should be greater than or equal to 1 (got -1)" in err
    assert "refusing to start" in err
