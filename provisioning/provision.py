"""`appliance provision …`: IT's steps on a box, run as root, each idempotent (provisioning/README.md).

credential   seal a new master key as the systemd credential (TPM2, or the host key with a warning), then
             create the database and a placeholder certificate as the service user
tls          install the office's certificate and key (checked: they match, valid now, not self-signed), or
             make a key and a certificate signing request (CSR) for the office CA
users        the first administrator and the responsible person, each with a one-time enrolment link
gallringsbeslut  the reference of the decision that permits the purge (config; the footer shows it)
firewall     the nftables ruleset: HTTPS from the office LAN, SSH from the admin network, outbound only what
             IT lists (NTP, the mail relay), everything else dropped
rotate-key   a new master key: every wrapped key re-wrapped, the new key sealed like the old one (TPM2 or host),
             the old one's wrappings dropped, the units restarted; receipts `key.rotate` in the audit log

The root half of a step is here; what touches the state directory runs as the service user in a transient
unit with the sealed key (provisioning/box.py), and every step leaves an audit record `box.provision`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import logging
import os
import pwd
import re
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.errors import ApplianceError
from provisioning import box

log = logging.getLogger(__name__)

STATE_DIR = Path("/var/lib/samtalsstod")
TLS_DIR = STATE_DIR / "tls"
PENDING_KEY = "pending-key.pem"
NFT_CONF = Path("/etc/samtalsstod/nftables.conf")
FIREWALL_UNIT = "appliance-firewall.service"


class ProvisionError(ApplianceError):
    """A provisioning step cannot go on; the message says what to do."""


def _require_root() -> None:
    if os.geteuid() != 0:
        raise ProvisionError("`appliance provision` changes the system: run it as root (sudo)")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if out.returncode != 0:
        raise ProvisionError(f"{' '.join(cmd[:3])} failed ({out.returncode}): {(out.stderr or out.stdout).strip()}")
    return out


def _as_service(argv: list[str]) -> str:
    """Run `appliance ARGV` as the service user with the master key; returns its output."""
    return _run(box.service_command(argv), timeout=600).stdout


def record(step: str, data: dict | None = None) -> None:
    """The audit record of a provisioning step (written as the service user)."""
    _as_service(["box", "record", step, "--data", json.dumps(data or {})])


# ---------------------------------------------------------------------------------------------- credential

def has_tpm2() -> bool:
    return subprocess.run(["systemd-creds", "has-tpm2"], capture_output=True, check=False).returncode == 0


def _seal(path: Path, with_key: str, name: str = "master-key", value_hex: str | None = None) -> None:
    box.CREDSTORE.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    _run(["systemd-creds", "encrypt", f"--with-key={with_key}", f"--name={name}", "-", str(tmp)],
         input=value_hex or new_key_hex())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def new_key_hex() -> str:
    return secrets.token_bytes(32).hex()


def credential(with_key: str = "auto") -> list[str]:
    """Seal the master key (once) and initialise the state directory as the service user."""
    _require_root()
    notes = []
    if box.CREDENTIAL.exists():
        notes.append(f"master key already sealed in {box.CREDENTIAL} ({_sealed_with()}); left as it is")
    else:
        if with_key == "auto":
            with_key = "tpm2" if has_tpm2() else "host"
        if with_key == "host":
            notes.append("WARNING: this machine has no usable TPM2; the master key is sealed with the host key "
                         "(/var/lib/systemd/credential.secret). Anyone who copies the whole disk can unseal it. "
                         "Use a box with a TPM2 and encrypt the disk.")
        _seal(box.CREDENTIAL, with_key)
        notes.append(f"master key sealed with --with-key={with_key} in {box.CREDENTIAL}")
    out = _as_service(["init"])
    notes.append(out.strip())
    record("credential", {"sealed": _sealed_with()})
    return notes


def _sealed_with() -> str:
    return box.sealed_with(box.CREDENTIAL)


# ---------------------------------------------------------------------------------------------- rotate-key

APPLIANCE_UNITS = ("appliance-web.service", "appliance-asr.service", "appliance-assistant.service",
                   "appliance-llm.service", "appliance-recorder.service")


def rotate_key() -> list[str]:
    """A new master key, sealed like the old one. At no moment does the sealed key fail to open the state:
    the new key's wrappings are added first, the credential is replaced in one rename, then the old key's
    wrappings are dropped (appliance/platform/keys.py). Running it again finishes a rotation cut off half-way."""
    _require_root()
    if not box.CREDENTIAL.exists():
        raise ProvisionError("no sealed master key yet: run `appliance provision credential` first")
    sealed = _sealed_with()
    with_key = {"tpm2": "tpm2", "tpm2+host": "tpm2+host", "host": "host"}.get(sealed)
    if with_key is None:
        raise ProvisionError(f"the master key is sealed in a way this tool does not reseal ({sealed}); "
                             "seal the new key by hand (systemd-creds encrypt)")
    new = new_key_hex()
    _run(box.service_command(["box", "rotate-key", "begin"]), input=new, timeout=600)
    _seal(box.CREDENTIAL, with_key, value_hex=new)  # the commit point: one rename
    _as_service(["box", "rotate-key", "finish", "--sealed", sealed])
    active = [u for u in APPLIANCE_UNITS
              if subprocess.run(["systemctl", "is-active", "--quiet", u], check=False).returncode == 0]
    if active:
        _run(["systemctl", "restart", *active])  # they hold the old credential's copy
    return [f"master key rotated (sealed with --with-key={with_key}); every wrapped key re-wrapped, the old "
            f"key opens nothing; restarted: {', '.join(active) or 'nothing was running'}",
            "receipt: `appliance audit export --format csv` (actions key.rotate_begin, key.rotate)"]


def rotate_dev_key(cfg) -> list[str]:  # noqa: ANN001 - Config
    """The same on a dev box, whose master key is the key file in the state dir (no systemd credential)."""
    from appliance.platform import keys

    path = keys.dev_master_key_path(cfg)
    if not path.exists():
        raise ProvisionError(f"no master key at {path}: run `appliance init` first")
    new = new_key_hex()
    box.rotate_begin(cfg, new)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # the commit point
    box.rotate_finish(cfg, "dev-key-file")
    return [f"dev master key rotated in {path}; every wrapped key re-wrapped; restart `appliance run`"]


# --------------------------------------------------------------------------------------------------- TLS

@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    not_after: dt.datetime
    fingerprint: str
    self_signed: bool


def cert_info(cert: x509.Certificate) -> CertInfo:
    self_signed = cert.issuer == cert.subject
    if self_signed:
        try:
            cert.verify_directly_issued_by(cert)
        except (ValueError, TypeError, Exception):  # noqa: BLE001 - any failure: not signed by itself
            self_signed = False
    return CertInfo(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_after_utc,
                    cert.fingerprint(hashes.SHA256()).hex(), self_signed)


def _service_ids() -> tuple[int, int]:
    pw = pwd.getpwnam(box.SERVICE_USER)
    return pw.pw_uid, pw.pw_gid


def _write_private(path: Path, data: bytes) -> None:
    """Atomically, 0600, owned by the service user (root writes into the state directory for it)."""
    uid, gid = _service_ids()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(path.parent, uid, gid)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chown(tmp, uid, gid)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def tls_csr(out: Path, hostnames: list[str], ips: list[str], tls_dir: Path = TLS_DIR) -> str:
    """A new key (kept in the state dir until the certificate comes back) and a CSR for the office CA."""
    _require_root()
    if not hostnames:
        raise ProvisionError("name the box: --hostname samtalsstod.kommun.example (repeat for more names)")
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(h) for h in hostnames] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
           .add_extension(x509.SubjectAlternativeName(san), critical=False)
           .sign(key, hashes.SHA256()))
    _write_private(tls_dir / PENDING_KEY, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    out.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    record("tls-csr", {"names": len(san)})
    return (f"Key made (kept in {tls_dir / PENDING_KEY}); certificate signing request written to {out}. "
            "Have the office CA sign it, then: appliance provision tls --cert SIGNED.pem [--chain CA-CHAIN.pem]")


def tls_install(cert_file: Path, key_file: Path | None, chain_file: Path | None = None, *,
                allow_self_signed: bool = False, tls_dir: Path = TLS_DIR, now: dt.datetime | None = None) -> str:
    """Check and install the office certificate (fullchain) and its key; restart the web unit if it runs."""
    _require_root()
    try:
        certs = x509.load_pem_x509_certificates(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"{cert_file}: not a PEM certificate ({exc})") from exc
    chain = []
    if chain_file is not None:
        try:
            chain = x509.load_pem_x509_certificates(chain_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise ProvisionError(f"{chain_file}: not PEM certificates ({exc})") from exc
    key_path = key_file or tls_dir / PENDING_KEY
    try:
        key_pem = key_path.read_bytes()
        key = serialization.load_pem_private_key(key_pem, password=None)
    except FileNotFoundError as exc:
        raise ProvisionError(f"no key: give --key KEY.pem, or make one with --csr first ({key_path})") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise ProvisionError(f"{key_path}: not an unencrypted PEM private key ({exc})") from exc
    leaf = certs[0]
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.DER, pub) != \
            key.public_key().public_bytes(serialization.Encoding.DER, pub):
        raise ProvisionError(f"{cert_file} does not belong to the key {key_path}")
    info = cert_info(leaf)
    now = now or dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now <= info.not_after:
        raise ProvisionError(f"{cert_file} is not valid now (valid {leaf.not_valid_before_utc:%Y-%m-%d} – "
                             f"{info.not_after:%Y-%m-%d})")
    if info.self_signed and not allow_self_signed:
        raise ProvisionError(f"{cert_file} is self-signed: browsers will warn every user. Use a certificate from "
                             "the office CA (`--csr`), or --allow-self-signed for a test box")
    fullchain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [*certs, *chain])
    _write_private(tls_dir / "key.pem", key_pem)
    _write_private(tls_dir / "cert.pem", fullchain)
    (tls_dir / PENDING_KEY).unlink(missing_ok=True)
    subprocess.run(["systemctl", "try-restart", "appliance-web.service"], check=False, capture_output=True)
    record("tls", {"fingerprint": info.fingerprint[:32], "not_after": int(info.not_after.timestamp()),
                   "self_signed": info.self_signed})
    return (f"Installed {tls_dir / 'cert.pem'}: {info.subject}, issued by {info.issuer}, valid until "
            f"{info.not_after:%Y-%m-%d}, SHA-256 {info.fingerprint[:16]}…")


# ------------------------------------------------------------------------------------------- gallringsbeslut

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")


def set_config_value(text: str, section: str, key: str, value: str) -> str:
    """`key = "value"` in [section] of a TOML text, replacing an earlier value, keeping everything else."""
    line = f"{key} = {json.dumps(value, ensure_ascii=False)}"
    lines = text.splitlines()
    current = None
    insert_at = None
    for i, raw in enumerate(lines):
        m = _SECTION.match(raw)
        if m:
            if current == section and insert_at is not None:
                break
            current = m.group(1).strip()
            if current == section:
                insert_at = i + 1
            continue
        if current == section and re.match(rf"^\s*{re.escape(key)}\s*=", raw):
            lines[i] = line
            return "\n".join(lines) + "\n"
        if current == section:
            insert_at = i + 1 if raw.strip() else insert_at
    if insert_at is None:
        return "\n".join([*lines, "", f"[{section}]", line]) + "\n"
    lines.insert(insert_at, line)
    return "\n".join(lines) + "\n"


def gallringsbeslut(reference: str, config_path: Path = box.CONFIG_PATH) -> str:
    _require_root()
    from appliance.config import load_config

    reference = reference.strip()
    if not reference or "\n" in reference or len(reference) > 200:
        raise ProvisionError("give the decision's reference on one line, at most 200 characters "
                             "(e.g. \"SN 2025/123 § 4\")")
    new = set_config_value(config_path.read_text(encoding="utf-8"), "retention", "gallringsbeslut", reference)
    tmp = config_path.with_name(config_path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    try:
        load_config(tmp, environ={})  # never leave a config the units cannot read
    except ApplianceError:
        tmp.unlink()
        raise
    os.chmod(tmp, 0o644)
    os.replace(tmp, config_path)
    subprocess.run(["systemctl", "try-restart", "appliance-web.service"], check=False, capture_output=True)
    record("gallringsbeslut", {"reference_sha256": hashlib.sha256(reference.encode()).hexdigest()[:32]})
    return f"Gallringsbeslut set in {config_path}: {reference}. The purge may run; every page's footer shows it."


# ------------------------------------------------------------------------------------------------- firewall

@dataclass(frozen=True)
class Allow:
    """One outbound exception: protocol, address (host or network) and port."""

    proto: str
    net: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int

    @classmethod
    def parse(cls, spec: str) -> Allow:
        m = re.match(r"^(tcp|udp):(\[[0-9a-fA-F:]+\](?:/\d+)?|[0-9.]+(?:/\d+)?):(\d{1,5})$", spec)
        if not m:
            raise ProvisionError(f"--allow-out {spec!r}: expected PROTO:ADDRESS:PORT, e.g. udp:192.0.2.10:123 "
                                 "(NTP) or tcp:192.0.2.25:25 (mail relay); IPv6 in brackets")
        try:
            net = ipaddress.ip_network(m.group(2).strip("[]").replace("]", ""), strict=False)
        except ValueError as exc:
            raise ProvisionError(f"--allow-out {spec!r}: {exc}") from exc
        port = int(m.group(3))
        if not 1 <= port <= 65535:
            raise ProvisionError(f"--allow-out {spec!r}: port out of range")
        return cls(m.group(1), net, port)


def _nets(values: list[str], what: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v, strict=False))
        except ValueError as exc:
            raise ProvisionError(f"{what} {v!r}: {exc}") from exc
    return out


def _family(nets, version: int) -> str:
    return ", ".join(str(n) for n in nets if n.version == version)


def ruleset(office: list[str], admin: list[str], allow_out: list[str], https_port: int = 443) -> str:
    """The box's nftables table: default drop in and out; loopback and answers to allowed traffic pass."""
    office_n, admin_n = _nets(office, "--office-net"), _nets(admin, "--admin-net")
    if not office_n:
        raise ProvisionError("name the office LAN that may reach the web: --office-net 10.1.0.0/16 (repeatable)")
    allows = [Allow.parse(a) for a in allow_out]
    lines = ["#!/usr/sbin/nft -f",
             "# Samtalsstöd box firewall, written by `appliance provision firewall`; loaded by "
             f"{FIREWALL_UNIT}.",
             "# Only this table is replaced; other tables (IT's own) stay. A packet any base chain drops is dropped.",
             "table inet samtalsstod",
             "delete table inet samtalsstod",
             "table inet samtalsstod {",
             "  chain input {",
             "    type filter hook input priority filter; policy drop;",
             "    iif lo accept",
             "    ct state established,related accept",
             "    ct state invalid drop",
             "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept",
             "    icmp type echo-request limit rate 5/second accept"]
    for version, saddr in ((4, "ip saddr"), (6, "ip6 saddr")):
        if _family(office_n, version):
            lines.append(f"    tcp dport {https_port} {saddr} {{ {_family(office_n, version)} }} accept")
        if _family(admin_n, version):
            lines.append(f"    tcp dport 22 {saddr} {{ {_family(admin_n, version)} }} accept")
    lines += ["  }",
              "  chain forward {",
              "    type filter hook forward priority filter; policy drop;",
              "  }",
              "  chain output {",
              "    type filter hook output priority filter; policy drop;",
              "    oif lo accept",
              "    ct state established,related accept",
              "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept"]
    for a in allows:
        daddr = "ip daddr" if a.net.version == 4 else "ip6 daddr"
        lines.append(f"    {daddr} {a.net} {a.proto} dport {a.port} accept")
    lines += ["    counter comment \"dropped outbound\"",
              "  }",
              "}"]
    return "\n".join(lines) + "\n"


def firewall(office: list[str], admin: list[str], allow_out: list[str], conf: Path = NFT_CONF) -> str:
    _require_root()
    text = ruleset(office, admin, allow_out)
    conf.parent.mkdir(parents=True, exist_ok=True)
    tmp = conf.with_name(conf.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    check = subprocess.run(["nft", "-c", "-f", str(tmp)], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        tmp.unlink()
        raise ProvisionError(f"nft refused the ruleset: {check.stderr.strip()}")
    os.replace(tmp, conf)
    _run(["systemctl", "enable", FIREWALL_UNIT])
    _run(["systemctl", "restart", FIREWALL_UNIT])
    record("firewall", {"office_nets": len(office), "admin_nets": len(admin), "allowed_out": len(allow_out)})
    return (f"Firewall written to {conf} and loaded ({FIREWALL_UNIT}, enabled at boot): HTTPS from "
            f"{', '.join(office)}; SSH from {', '.join(admin) or 'nowhere'}; outbound only "
            f"{', '.join(allow_out) or 'nothing'} (and answers to allowed connections).")


def main_step(args) -> int:  # noqa: ANN001 - argparse namespace
    """Dispatch `appliance provision STEP` (provisioning/cli.py registers the arguments)."""
    step = args.step
    if step == "credential":
        for line in credential(args.with_key):
            print(line)
    elif step == "tls":
        if args.csr:
            print(tls_csr(Path(args.csr), args.hostname or [], args.ip or []))
        else:
            if not args.cert:
                raise ProvisionError("give --cert CERT.pem [--key KEY.pem] [--chain CHAIN.pem], or --csr OUT.csr")
            print(tls_install(Path(args.cert), Path(args.key) if args.key else None,
                              Path(args.chain) if args.chain else None, allow_self_signed=args.allow_self_signed))
    elif step == "users":
        print(_as_service(["box", "users", "--admin", args.admin, "--responsible", args.responsible,
                           *(["--admin-email", args.admin_email] if args.admin_email else []),
                           *(["--responsible-email", args.responsible_email] if args.responsible_email else [])]
                          ).strip())
    elif step == "gallringsbeslut":
        print(gallringsbeslut(args.reference))
    elif step == "firewall":
        print(firewall(args.office_net or [], args.admin_net or [], args.allow_out or []))
    elif step == "rotate-key":
        if box.on_box():
            lines = rotate_key()
        else:
            from appliance.config import load_config

            lines = rotate_dev_key(load_config(args.config))
        print("\n".join(lines))
    sys.stdout.flush()
    return 0
