import pytest

from appliance.config import load_config
from appliance.errors import KeyError_
from appliance.platform import db, keys
from appliance.platform.context import init_state, open_appliance


def test_database_is_sqlcipher_encrypted(app_ctx, conn):
    conn.execute("INSERT INTO app_secrets (name, value) VALUES ('canary', 'KANARIEFAGEL-HEMLIG')")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = app_ctx.db_file.read_bytes()
    assert not raw.startswith(b"SQLite format 3")
    assert b"KANARIEFAGEL" not in raw
    assert conn.execute("PRAGMA cipher_version").fetchone()[0].startswith("4.")


def test_wrong_db_key_refused(app_ctx):
    with pytest.raises(KeyError_, match="wrong key"):
        db.connect(app_ctx.db_file, keys.new_key())


def test_db_key_is_wrapped_by_master_key(app_ctx, state_env):
    cfg = app_ctx.cfg
    wrapped = keys.db_key_path(cfg).read_bytes()
    assert app_ctx.current_db().key not in wrapped and app_ctx.current_db().key.hex() not in wrapped.decode()
    keys.dev_master_key_path(cfg).write_text(keys.new_key().hex())
    with pytest.raises(KeyError_, match="master key is not the one"):
        open_appliance(cfg)


def test_systemd_credential_preferred(tmp_path, monkeypatch, state_env):
    cred = tmp_path / "creds"
    cred.mkdir()
    (cred / "master-key").write_text(keys.new_key().hex())
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(cred))
    cfg = load_config(environ=state_env)
    app = init_state(cfg)
    assert not keys.dev_master_key_path(cfg).exists()
    assert open_appliance(cfg).current_db() == app.current_db()


def test_missing_credential_is_actionable(tmp_path, monkeypatch, state_env):
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(KeyError_, match="LoadCredentialEncrypted"):
        keys.load_master_key(load_config(environ=state_env))


def test_uninitialised_state_is_actionable(state_env):
    with pytest.raises(KeyError_, match="appliance init"):
        open_appliance(load_config(environ=state_env))


def test_migrations_idempotent(app_ctx, conn):
    v = db.schema_version(conn)
    assert v >= 1
    assert db.migrate(conn) == []
    init_state(app_ctx.cfg)
    assert db.schema_version(conn) == v
