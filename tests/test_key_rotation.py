"""Rotating the master key (issue 12): every wrapped key re-wrapped, the old key opens nothing afterwards, the audit
chain and the database carry on, and a rotation cut off at any step leaves a state the sealed key opens."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing

import pytest

from appliance.config import load_config
from appliance.errors import KeyError_
from appliance.platform import audit, keys, retention
from appliance.platform.context import init_state, open_appliance
from appliance.users import accounts
from provisioning import box
from provisioning.provision import rotate_dev_key


@pytest.fixture
def cfg(tmp_path):
    cfg = load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state")})
    app = init_state(cfg)
    with closing(app.connect()) as conn:
        accounts.create_user(conn, "anna", ["caseworker"])  # an audited action before the rotation
    return cfg


def _key_files(cfg) -> list:
    return [keys.db_key_path(cfg), *sorted((cfg.paths.state_dir / "keys").glob("*.json"))]


def test_rotation_rewraps_everything_and_the_old_key_opens_nothing(cfg):
    old = keys.load_master_key(cfg)
    files = _key_files(cfg)
    assert len(files) >= 2  # the database key and the audit MAC key at least
    lines = rotate_dev_key(cfg)
    new = keys.load_master_key(cfg)
    assert new != old and "rotated" in lines[0]
    with pytest.raises(KeyError_):
        keys.load_db_key(cfg, old)
    with pytest.raises(KeyError_):
        keys.subkey(cfg, old, audit.KEY_PURPOSE)
    app = open_appliance(cfg)  # the database opens with the new key, and the chain verifies across the rotation
    with closing(app.connect()) as conn:
        assert accounts.find_user(conn, "anna") is not None
        accounts.create_user(conn, "bo", ["caseworker"])
        begun, done = audit.entries(conn, action="key.rotate_begin"), audit.entries(conn, action="key.rotate")
    assert audit.verify(app).ok
    assert len(begun) == len(done) == 1
    assert begun[0]["data"]["old_key_fingerprint"] == keys.fingerprint(old)
    assert begun[0]["data"]["new_key_fingerprint"] == done[0]["data"]["new_key_fingerprint"] == keys.fingerprint(new)
    for path in _key_files(cfg):  # one wrapping each again, and no key material in clear
        text = path.read_text()
        assert '"wrappings"' not in text and new.hex() not in text and old.hex() not in text
    assert not keys.rotation_pending(cfg)


def test_a_rotation_cut_off_after_its_first_step_still_opens_and_finishes(cfg):
    old, new = keys.load_master_key(cfg), keys.new_key()
    box.rotate_begin(cfg, new.hex())
    # Cut off before the credential was replaced: the old key still opens everything, the new one too.
    for master in (old, new):
        assert keys.load_db_key(cfg, master).key == keys.load_db_key(cfg, old).key
        assert keys.subkey(cfg, master, audit.KEY_PURPOSE) == keys.subkey(cfg, old, audit.KEY_PURPOSE)
    # A purge would re-key under one master only: it waits for the rotation.
    with pytest.raises(KeyError_, match="rotation"):
        retention.purge(open_appliance(cfg))
    keys.dev_master_key_path(cfg).write_text(new.hex())  # the commit point happened
    box.rotate_finish(cfg, "dev-key-file")
    with pytest.raises(KeyError_):
        keys.load_db_key(cfg, old)
    retention.purge(open_appliance(cfg))  # and the purge runs again


def test_finish_refuses_with_a_key_the_first_step_never_saw(cfg):
    box.rotate_begin(cfg, keys.new_key().hex())
    stranger = keys.new_key()
    with pytest.raises(KeyError_, match="does not open"):
        keys.rotate_finish(cfg, stranger)
    assert keys.rotation_pending(cfg)  # nothing dropped: the sealed key still opens the state


def test_cli_rotates_a_dev_box(cfg, tmp_path):
    env = {"APPLIANCE_PATHS__STATE_DIR": str(cfg.paths.state_dir), "PATH": "/usr/bin:/bin"}
    old = keys.load_master_key(cfg)
    out = subprocess.run([sys.executable, "-m", "provisioning.cli", "provision", "rotate-key"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "rotated" in out and old.hex() not in out
    assert keys.load_master_key(cfg) != old
    assert audit.verify(open_appliance(cfg)).ok
