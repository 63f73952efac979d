"""The box's parts without a container (tests/test_box.py boots the real thing): offline exposure of the rendered
units, offline model bundles, the firewall ruleset, the config edit of `provision gallringsbeslut`, audited
unclean stops, what a credential is sealed to."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.errors import ModelError
from appliance.platform import audit
from appliance.platform.context import init_state
from models.store import install_bundle, verify_model, write_bundle
from provisioning import box, provision
from provisioning.units import write

GOAL = {"appliance-web.service": 2.5, "appliance-asr.service": 1.5, "appliance-assistant.service": 1.5,
        "appliance-llm.service": 1.5, "appliance-recorder.service": 1.5}


def test_rendered_units_meet_the_exposure_goal_offline(tmp_path):
    written = write(load_config(environ={}), tmp_path)
    assert "appliance-web.socket" in {p.name for p in written}
    for unit, goal in GOAL.items():
        text = (tmp_path / unit).read_text()
        assert "\n# @hardening@\n" not in text and "CapabilityBoundingSet=\n" in text and "Type=notify" in text
        out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(tmp_path / unit)],
                             capture_output=True, text=True)
        score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout).group(1))
        assert score <= goal, (unit, score)


def _bundle(tmp_path: Path, model_store: Path) -> tuple[Path, str]:
    out = tmp_path / "b.tar"
    return out, write_bundle(model_store, ["whisper-base"], out)


def test_bundle_installs_and_verifies(tmp_path, model_store):
    bundle, digest = _bundle(tmp_path, model_store)
    with bundle.open("rb") as f:
        result = install_bundle(tmp_path / "store", f, digest, log=lambda _m: None)
    assert result.models == ("whisper-base",) and result.files == 4
    assert verify_model(tmp_path / "store", "whisper-base").is_dir()


def _tamper(bundle: Path, out: Path, extra: tuple[str, bytes] | None = None, flip: str | None = None) -> Path:
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == flip:
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(m, io.BytesIO(data))
        if extra:
            info = tarfile.TarInfo(extra[0])
            info.size = len(extra[1])
            dst.addfile(info, io.BytesIO(extra[1]))
    return out


@pytest.mark.parametrize("case", ["unlisted", "damaged", "wrong-manifest-hash"])
def test_bundle_refuses_anything_not_in_its_manifest(tmp_path, model_store, case):
    bundle, digest = _bundle(tmp_path, model_store)
    if case == "unlisted":
        bad = _tamper(bundle, tmp_path / "x.tar", extra=("whisper-base/evil.py", b"print(1)"))
    elif case == "damaged":
        bad = _tamper(bundle, tmp_path / "x.tar", flip="whisper-base/config.json")
    else:
        bad, digest = bundle, "0" * 64
    store = tmp_path / "store"
    with bad.open("rb") as f, pytest.raises(ModelError, match="nothing installed"):
        install_bundle(store, f, digest, log=lambda _m: None)
    assert not (store / "whisper-base").exists() and not list(store.glob(".bundle-*"))


def test_firewall_ruleset_is_default_drop_and_nft_accepts_it(tmp_path):
    text = provision.ruleset(["10.1.0.0/16", "fd00::/64"], ["10.9.8.0/24"], ["udp:10.1.0.10:123", "tcp:10.1.0.25:25"])
    assert "hook output priority filter; policy drop;" in text and "hook input priority filter; policy drop;" in text
    assert "tcp dport 443 ip saddr { 10.1.0.0/16 } accept" in text and "ip6 saddr { fd00::/64 }" in text
    assert "ip daddr 10.1.0.10/32 udp dport 123 accept" in text and "tcp dport 22 ip saddr { 10.9.8.0/24 }" in text
    (tmp_path / "r.nft").write_text(text)
    check = subprocess.run(["nft", "-c", "-f", str(tmp_path / "r.nft")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with pytest.raises(provision.ProvisionError, match="PROTO:ADDRESS:PORT"):
        provision.ruleset(["10.1.0.0/16"], [], ["10.1.0.10:123"])
    with pytest.raises(provision.ProvisionError, match="office LAN"):
        provision.ruleset([], [], [])


def test_gallringsbeslut_is_set_in_the_config_keeping_the_rest():
    text = '# box\n[paths]\nstate_dir = "/var/lib/x"\n\n[retention]\nmax_age_hours = 48\n\n[llm]\nmodel = "m"\n'
    once = provision.set_config_value(text, "retention", "gallringsbeslut", "SN 1/2 § 3")
    assert 'gallringsbeslut = "SN 1/2 § 3"' in once and "max_age_hours = 48" in once and "# box" in once
    twice = provision.set_config_value(once, "retention", "gallringsbeslut", "SN 4")
    assert twice.count("gallringsbeslut") == 1 and 'gallringsbeslut = "SN 4"' in twice
    fresh = provision.set_config_value('[paths]\nstate_dir = "x"\n', "retention", "gallringsbeslut", "A")
    import tomllib

    assert tomllib.loads(fresh)["retention"]["gallringsbeslut"] == "A"


def test_an_unclean_stop_is_audited_at_the_next_start(tmp_path):
    cfg = load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state")})
    init_state(cfg)
    assert box.unit_stopped(cfg, "appliance-asr.service", {"SERVICE_RESULT": "success"}) is None
    assert box.unit_started(cfg, "appliance-asr.service") == []
    note = box.unit_stopped(cfg, "appliance-asr.service", {"SERVICE_RESULT": "watchdog", "EXIT_CODE": "killed",
                                                          "EXIT_STATUS": "ABRT"})
    assert note.exists()
    recs = box.unit_started(cfg, "appliance-asr.service")
    assert [(r["action"], r["target"], r["detail"], r["data"]["exit_status"]) for r in recs] == [
        ("unit.restart", "unit:appliance-asr.service", "watchdog", "ABRT")]
    assert not note.exists() and box.unit_started(cfg, "appliance-asr.service") == []
    app = init_state(cfg)
    with app.connect() as conn:
        assert audit.verify(conn).ok


def test_sealed_with_reads_the_credential_header(tmp_path):
    import base64

    header = bytes.fromhex("0c7cc07b117645919c4b0bea08bc20fe") + b"\0" * 40
    (tmp_path / "c").write_bytes(base64.encodebytes(header))
    assert box.sealed_with(tmp_path / "c") == "tpm2"
    assert box.sealed_with(tmp_path / "missing") == "none"
    (tmp_path / "d").write_text(json.dumps({"x": 1}))
    assert box.sealed_with(tmp_path / "d") == "unknown"
