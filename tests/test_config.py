from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.errors import ConfigError
from provisioning.cli import main as cli


def test_defaults_are_valid():
    cfg = load_config(environ={})
    assert cfg.web.port == 8443 and cfg.asr.language == "sv" and cfg.paths.state_dir == Path("var")


def test_file_and_env_override(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('[web]\nport = 9443\n[asr]\nbeam_size = 2\n')
    cfg = load_config(f, environ={"APPLIANCE_WEB__PORT": "10443", "APPLIANCE_PATHS__STATE_DIR": "/x"})
    assert cfg.web.port == 10443 and cfg.asr.beam_size == 2 and cfg.paths.state_dir == Path("/x")


def test_unknown_key_in_file_is_named(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('[web]\nprot = 9443\n')
    with pytest.raises(ConfigError, match=r"unknown key 'web\.prot'"):
        load_config(f, environ={})


def test_unknown_section_in_file_is_named(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('[secrets]\nmaster = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'secrets'"):
        load_config(f, environ={})


def test_unknown_env_key_is_named():
    with pytest.raises(ConfigError, match="APPLIANCE_WBE__PORT"):
        load_config(environ={"APPLIANCE_WBE__PORT": "1"})
    with pytest.raises(ConfigError, match=r"unknown key 'web\.colour'"):
        load_config(environ={"APPLIANCE_WEB__COLOUR": "1"})


def test_bad_value_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"'web\.port'"):
        load_config(environ={"APPLIANCE_WEB__PORT": "99999"})
    f = tmp_path / "b.toml"
    f.write_text("[web\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f, environ={})


def test_cli_config_validate(tmp_path, capsys):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[asr]\nlanguage = "sv"\n')
    bad.write_text('[asr]\nlangauge = "sv"\n')
    assert cli(["config", "validate", str(good)]) == 0
    assert cli(["config", "validate", str(bad)]) == 2
    assert "unknown key 'asr.langauge'" in capsys.readouterr().err
