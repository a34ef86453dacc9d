"""Pytest fixture: a real Postfix and Dovecot on loopback, built for one test session.

The lab lives in a fresh directory under /tmp, listens on 127.0.0.1 only, on
ports chosen at run time, and writes nothing under /etc. Every config file is
rendered from the templates below, filled only with values this module chose
(paths, ports, uids); nothing a client sends ever reaches a template.

The enforcement hooks point at ports the fixture reserves but does not serve:
tests start their own policy server, socketmap server and auth-policy server
there (a stand-in in the smoke test, the real adapters in the end-to-end
tests). Until something listens, Postfix policy lookups fail open
(``smtpd_policy_service_default_action = DUNNO``) and so does Dovecot
(``auth_policy_reject_on_fail = no``).

How the lab is built and why each setting is there: docs/mail-lab.md.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from string import Template

import orjson
import pytest

LAB_DOMAIN = "mailwarden.test"
LAB_HOSTNAME = f"mail.{LAB_DOMAIN}"
LAB_HOST = "127.0.0.1"
VMAIL_USER = "mwvmail"
SOCKETMAP_NAME = "sasl_access"
DOVECOT_DH = Path("/usr/share/dovecot/dh.pem")
REQUIRED_BINARIES = ("postfix", "postconf", "dovecot", "doveadm", "openssl")
SINK_SCRIPT = Path(__file__).resolve().parent.parent / "lab" / "sink.py"

LAB_PASSWORDS: dict[str, str] = {
    f"alice@{LAB_DOMAIN}": "AlicePass1",
    f"bob@{LAB_DOMAIN}": "BobPass2",
    f"carol@{LAB_DOMAIN}": "CarolPass3",
    f"dave@{LAB_DOMAIN}": "DavePass4",
}

# Paths end up unquoted in Postfix and Dovecot configs: allow only what needs no quoting.
_SAFE_PATH = re.compile(r"[A-Za-z0-9_./+-]+")

MAIN_CF = Template("""\
# Rendered by tests/support/mail_lab.py for one test session. Loopback only.
compatibility_level = 3.6
myhostname = $hostname
mydomain = $domain
myorigin = $$mydomain
mydestination = localhost
inet_interfaces = $host
inet_protocols = ipv4
mynetworks = $host/32
queue_directory = $spool
data_directory = $pfdata
# maillog_file needs the postlog service in master.cf and a prefix that covers it
maillog_file = $postfix_log
maillog_file_prefixes = $log_dir
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtpd_banner = $$myhostname ESMTP
# local mailboxes through virtual(8): no system accounts; texthash needs no postmap
virtual_mailbox_domains = $domain
virtual_mailbox_maps = texthash:$vmailbox
virtual_mailbox_base = $vmail
virtual_uid_maps = static:$vmail_uid
virtual_gid_maps = static:$vmail_gid
virtual_minimum_uid = 100
# every other domain goes to the loopback sink, never to the internet
relayhost = [$host]:$sink_port
smtp_dns_support_level = disabled
smtp_bind_address = $host
smtp_tls_security_level = none
smtpd_tls_cert_file = $tls_cert
smtpd_tls_key_file = $tls_key
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
# SASL through Dovecot; the socket path is relative to queue_directory
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
# mailwarden is a detector: when its policy server is down, mail flows (fail open)
smtpd_policy_service_default_action = DUNNO
""")

# -o values may not contain spaces: list items are separated by commas.
MASTER_CF = Template("""\
# Rendered by tests/support/mail_lab.py. service type private unpriv chroot wakeup maxproc command
$submission_port inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=may
  -o smtpd_tls_auth_only=no
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_hard_error_limit=3
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=check_policy_service,inet:$host:$policy_port
  -o smtpd_end_of_data_restrictions=check_policy_service,inet:$host:$policy_port
  -o smtpd_policy_service_policy_context=submission
$smtps_port inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=check_policy_service,inet:$host:$policy_port
  -o smtpd_end_of_data_restrictions=check_policy_service,inet:$host:$policy_port
  -o smtpd_policy_service_policy_context=smtps
$submission_map_port inet n - n - - smtpd
  -o syslog_name=postfix/submission-map
  -o smtpd_tls_security_level=may
  -o smtpd_tls_auth_only=no
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=check_sasl_access,$sasl_access_table
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
  -o syslog_name=postfix/$$service_name
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
""")

DOVECOT_CONF = Template("""\
# Rendered by tests/support/mail_lab.py. Standalone: does not include /etc/dovecot.
instance_name = $instance
protocols = imap pop3
listen = $host
base_dir = $dovecot_run
state_dir = $dovecot_state
log_path = $dovecot_log
info_log_path = $dovecot_log
auth_verbose = yes
auth_mechanisms = plain login
disable_plaintext_auth = no
ssl = yes
ssl_cert = <$tls_cert
ssl_key = <$tls_key
ssl_dh = <$dh_file
ssl_min_protocol = TLSv1.2
# the vmail user is a system account; the default of 500 would exclude it
first_valid_uid = $vmail_uid
mail_location = maildir:$vmail/%d/%n
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $users_file
}
userdb {
  driver = passwd-file
  args = username_format=%u $users_file
  default_fields = uid=$vmail_uid gid=$vmail_gid home=$vmail/%d/%n
}
service imap-login {
  inet_listener imap {
    port = $imap_port
  }
  inet_listener imaps {
    port = $imaps_port
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $pop3_port
  }
  inet_listener pop3s {
    port = $pop3s_port
    ssl = yes
  }
}
# Postfix's smtpd_sasl_path
service auth {
  unix_listener $sasl_socket {
    mode = 0660
    user = postfix
    group = postfix
  }
}
# %{fail_type} is not supported by Dovecot 2.3.19: it would break every request
auth_policy_server_url = http://$host:$authpolicy_port/
auth_policy_hash_nonce = $nonce
auth_policy_request_attributes = login=%{requested_username} pwhash=%{hashed_password} \
remote=%{rip} device_id=%{client_id} protocol=%s session_id=%{session} local=%{lip} \
secured=%{secured} mech=%{mech}
auth_policy_reject_on_fail = no
auth_policy_check_before_auth = yes
auth_policy_check_after_auth = yes
auth_policy_report_after_auth = yes
""")


class LabError(RuntimeError):
    """The lab could not be built or started; the message says which step failed."""


@dataclass(frozen=True, slots=True)
class LabPorts:
    """TCP ports on 127.0.0.1, all chosen when the lab is built."""

    submission: int
    smtps: int
    submission_map: int
    sink: int
    policy: int
    socketmap: int
    authpolicy: int
    imap: int
    imaps: int
    pop3: int
    pop3s: int

    def served_by_lab(self) -> tuple[int, ...]:
        """The ports the fixture itself brings up (the hook ports are the tests' business)."""
        return (
            self.submission,
            self.smtps,
            self.submission_map,
            self.sink,
            self.imap,
            self.imaps,
            self.pop3,
            self.pop3s,
        )


@dataclass(frozen=True, slots=True)
class LabPaths:
    root: Path

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def postfix_dir(self) -> Path:
        return self.root / "postfix"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def pfdata(self) -> Path:
        return self.root / "pfdata"

    @property
    def dovecot_dir(self) -> Path:
        return self.root / "dovecot"

    @property
    def dovecot_conf(self) -> Path:
        return self.dovecot_dir / "dovecot.conf"

    @property
    def users_file(self) -> Path:
        return self.dovecot_dir / "users"

    @property
    def vmail(self) -> Path:
        return self.root / "vmail"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def postfix_log(self) -> Path:
        return self.log_dir / "postfix.log"

    @property
    def dovecot_log(self) -> Path:
        return self.log_dir / "dovecot.log"

    @property
    def sink_record(self) -> Path:
        return self.log_dir / "sink.jsonl"

    @property
    def sasl_socket(self) -> Path:
        return self.spool / "private" / "auth"

    @property
    def postfix_master_pid(self) -> Path:
        return self.spool / "pid" / "master.pid"

    @property
    def dovecot_master_pid(self) -> Path:
        return self.dovecot_dir / "run" / "master.pid"


@dataclass(slots=True)
class MailLab:
    """A running Postfix + Dovecot + SMTP sink; what tests need to drive and observe it."""

    paths: LabPaths
    ports: LabPorts
    users: dict[str, str]
    host: str = LAB_HOST
    domain: str = LAB_DOMAIN
    socketmap_name: str = SOCKETMAP_NAME
    sink_process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def postfix_log(self) -> Path:
        return self.paths.postfix_log

    @property
    def dovecot_log(self) -> Path:
        return self.paths.dovecot_log

    @property
    def doveadm_config(self) -> Path:
        return self.paths.dovecot_conf

    def password(self, user: str) -> str:
        return self.users[user]

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(["postfix", "-c", str(self.paths.postfix_dir), *args])

    def postconf(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(["postconf", "-c", str(self.paths.postfix_dir), *args])

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(["doveadm", "-c", str(self.paths.dovecot_conf), *args])

    def wait_for_log(
        self,
        path: Path,
        predicate: Callable[[str], bool],
        timeout: float = 10.0,
        since: int = 0,
    ) -> str:
        return wait_for_log(path, predicate, timeout=timeout, since=since)

    def sink_messages(self) -> list[dict[str, object]]:
        """Every message the sink accepted so far, oldest first."""
        if not self.paths.sink_record.exists():
            return []
        lines = self.paths.sink_record.read_bytes().splitlines()
        return [orjson.loads(line) for line in lines if line.strip()]

    def wait_for_sink(
        self, predicate: Callable[[dict[str, object]], bool], timeout: float = 10.0
    ) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.sink_messages():
                if predicate(message):
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no matching message reached the sink within {timeout} s; "
                    f"it holds {len(self.sink_messages())} message(s)"
                )
            time.sleep(0.05)


def log_offset(path: Path) -> int:
    """The current end of a log file, to wait only for lines written after this point."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def wait_for_log(
    path: Path, predicate: Callable[[str], bool], timeout: float = 10.0, since: int = 0
) -> str:
    """Poll ``path`` from byte ``since`` until a complete line satisfies ``predicate``.

    Returns that line. Daemons write their logs asynchronously, so tests wait
    instead of reading once; on timeout the error shows the file's last lines.
    """
    deadline = time.monotonic() + timeout
    while True:
        for line in _complete_lines(path, since):
            if predicate(line):
                return line
        if time.monotonic() > deadline:
            tail = "\n".join(_complete_lines(path, since)[-25:])
            raise AssertionError(
                f"no matching line in {path} within {timeout} s; last lines:\n{tail}"
            )
        time.sleep(0.05)


def _complete_lines(path: Path, since: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(since)
            data = handle.read()
    except FileNotFoundError:
        return []
    complete = data[: data.rfind(b"\n") + 1]
    return complete.decode("utf-8", "replace").splitlines()


def _run(command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        raise LabError(
            f"{' '.join(command)} exited {result.returncode}: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def _start_daemon(command: list[str], output: Path) -> None:
    """Run a command that daemonizes: its child keeps stdout open, so no pipe may wait on it."""
    with output.open("ab") as sink:
        code = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, timeout=60, check=False
        ).returncode
    if code != 0:
        said = output.read_text(errors="replace")[-2000:]
        raise LabError(f"{' '.join(command)} exited {code}: {said}")


def _reserve_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1, all held open together so none repeats."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LAB_HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _listening_ports() -> set[int]:
    """Ports in LISTEN state, from /proc: probing by connecting would leave log lines."""
    listening: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A":
                listening.add(int(fields[1].rsplit(":", 1)[1], 16))
    return listening


def wait_for_listener(port: int, timeout: float = 15.0) -> None:
    """Wait until something listens on ``port`` (a daemon or an adapter the test started)."""
    _wait_until(lambda: port in _listening_ports(), f"a listener on port {port}", timeout)


def _wait_until(ready: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "the mail lab needs root (postfix/dovecot start, useradd, chown)"
    for binary in REQUIRED_BINARIES:
        if shutil.which(binary) is None:
            return (
                f"{binary} not found: install postfix, dovecot-core, dovecot-imapd, dovecot-pop3d"
            )
    for account in ("postfix", "dovecot", "dovenull"):
        try:
            pwd.getpwnam(account)
        except KeyError:
            return f"system user {account!r} missing: reinstall the postfix/dovecot packages"
    if not DOVECOT_DH.exists():
        return f"{DOVECOT_DH} missing: reinstall dovecot-core"
    return None


def _vmail_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(VMAIL_USER)
    except KeyError:
        _run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                VMAIL_USER,
            ]
        )
        entry = pwd.getpwnam(VMAIL_USER)
    return entry.pw_uid, entry.pw_gid


def _checked_path(path: Path) -> str:
    text = str(path)
    if not _SAFE_PATH.fullmatch(text):
        raise LabError(f"lab path {text!r} has characters the configs cannot hold unquoted")
    return text


def _make_certificate(paths: LabPaths) -> None:
    key, cert = paths.tls_dir / "key.pem", paths.tls_dir / "cert.pem"
    _run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            f"/CN={LAB_HOSTNAME}",
            "-addext",
            f"subjectAltName=DNS:{LAB_HOSTNAME},IP:{LAB_HOST}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ]
    )
    key.chmod(0o600)


def _write_configs(
    paths: LabPaths, ports: LabPorts, users: dict[str, str], vmail_ids: tuple[int, int]
) -> None:
    vmail_uid, vmail_gid = vmail_ids
    values: dict[str, object] = {
        "host": LAB_HOST,
        "hostname": LAB_HOSTNAME,
        "domain": LAB_DOMAIN,
        "spool": _checked_path(paths.spool),
        "pfdata": _checked_path(paths.pfdata),
        "log_dir": _checked_path(paths.log_dir),
        "postfix_log": _checked_path(paths.postfix_log),
        "dovecot_log": _checked_path(paths.dovecot_log),
        "vmailbox": _checked_path(paths.postfix_dir / "vmailbox"),
        "vmail": _checked_path(paths.vmail),
        "vmail_uid": vmail_uid,
        "vmail_gid": vmail_gid,
        "tls_cert": _checked_path(paths.tls_dir / "cert.pem"),
        "tls_key": _checked_path(paths.tls_dir / "key.pem"),
        "dh_file": _checked_path(DOVECOT_DH),
        "dovecot_run": _checked_path(paths.dovecot_dir / "run"),
        "dovecot_state": _checked_path(paths.dovecot_dir / "state"),
        "users_file": _checked_path(paths.users_file),
        "sasl_socket": _checked_path(paths.sasl_socket),
        "instance": f"mwlab-{paths.root.name}",
        "nonce": secrets.token_hex(16),
        "sasl_access_table": f"socketmap:inet:{LAB_HOST}:{ports.socketmap}:{SOCKETMAP_NAME}",
        "submission_port": ports.submission,
        "smtps_port": ports.smtps,
        "submission_map_port": ports.submission_map,
        "sink_port": ports.sink,
        "policy_port": ports.policy,
        "socketmap_port": ports.socketmap,
        "authpolicy_port": ports.authpolicy,
        "imap_port": ports.imap,
        "imaps_port": ports.imaps,
        "pop3_port": ports.pop3,
        "pop3s_port": ports.pop3s,
    }
    (paths.postfix_dir / "main.cf").write_text(MAIN_CF.substitute(values))
    (paths.postfix_dir / "master.cf").write_text(MASTER_CF.substitute(values))
    (paths.postfix_dir / "vmailbox").write_text(
        "".join(f"{user} {user.split('@')[1]}/{user.split('@')[0]}/\n" for user in users)
    )
    paths.dovecot_conf.write_text(DOVECOT_CONF.substitute(values))
    paths.users_file.write_text(
        "".join(f"{user}:{{PLAIN}}{password}::::::\n" for user, password in users.items())
    )
    shutil.chown(paths.users_file, "root", "dovecot")
    paths.users_file.chmod(0o640)
    shutil.chown(paths.pfdata, "postfix", "postfix")
    shutil.chown(paths.vmail, VMAIL_USER, VMAIL_USER)


def build_lab(root: Path) -> MailLab:
    """Lay out directories, certificate and configs under ``root``; start nothing."""
    paths = LabPaths(root)
    # The daemons' unprivileged users must be able to walk into the lab.
    root.chmod(0o755)
    for directory in (
        paths.log_dir,
        paths.postfix_dir,
        paths.spool,
        paths.pfdata,
        paths.dovecot_dir / "run",
        paths.dovecot_dir / "state",
        paths.vmail,
        paths.tls_dir,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    ports = LabPorts(*_reserve_ports(len(fields(LabPorts))))
    users = dict(LAB_PASSWORDS)
    vmail_ids = _vmail_ids()
    _make_certificate(paths)
    _write_configs(paths, ports, users, vmail_ids)
    _run(["doveconf", "-c", str(paths.dovecot_conf), "-n"])
    return MailLab(paths=paths, ports=ports, users=users)


def start_lab(lab: MailLab) -> None:
    """Sink first, then Postfix (it creates spool/private), then Dovecot (the SASL socket)."""
    sink_output = (lab.paths.log_dir / "sink.out").open("wb")
    lab.sink_process = subprocess.Popen(
        [
            sys.executable,
            str(SINK_SCRIPT),
            "--host",
            lab.host,
            "--port",
            str(lab.ports.sink),
            "--record",
            str(lab.paths.sink_record),
        ],
        stdin=subprocess.DEVNULL,
        stdout=sink_output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sink_output.close()
    lab.postfix("start")
    _wait_until(lambda: (lab.paths.spool / "private").is_dir(), "Postfix to create spool/private")
    _start_daemon(["dovecot", "-c", str(lab.paths.dovecot_conf)], lab.paths.log_dir / "dovecot.out")
    expected = set(lab.ports.served_by_lab())
    _wait_until(lambda: expected <= _listening_ports(), f"lab ports {sorted(expected)} to listen")
    _wait_until(lab.paths.sasl_socket.exists, "Dovecot's SASL socket for Postfix")


def stop_lab(lab: MailLab) -> None:
    """Stop everything the lab started; each step runs even if an earlier one failed."""
    masters = [_read_pid(lab.paths.postfix_master_pid), _read_pid(lab.paths.dovecot_master_pid)]
    _run(["postfix", "-c", str(lab.paths.postfix_dir), "stop"], check=False)
    _run(["doveadm", "-c", str(lab.paths.dovecot_conf), "stop"], check=False)
    if lab.sink_process is not None:
        lab.sink_process.terminate()
        try:
            lab.sink_process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            lab.sink_process.kill()
            lab.sink_process.wait()
    for pid in masters:
        if pid is not None:
            _end_process(pid)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _end_process(pid: int, grace: float = 5.0) -> None:
    """Wait for a daemon master to exit after its stop command; force it if it lingers."""
    deadline = time.monotonic() + grace
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def mail_lab(request: pytest.FixtureRequest) -> Iterator[MailLab]:
    missing = _missing_prerequisite()
    if missing is not None:
        pytest.skip(f"mail lab unavailable: {missing}")
    # Not under pytest's tmp_path: its 0700 parents would keep the daemons' users out.
    root = Path(tempfile.mkdtemp(prefix="mwlab-", dir="/tmp"))
    lab: MailLab | None = None
    try:
        lab = build_lab(root)
        start_lab(lab)
        yield lab
    finally:
        if lab is not None:
            stop_lab(lab)
        if request.session.testsfailed:
            sys.stderr.write(f"\nmail lab kept for inspection: {root}\n")
        else:
            shutil.rmtree(root, ignore_errors=True)
