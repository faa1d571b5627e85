"""A private Dovecot for the bounce tests: Debian's package, its own config, state and logs in a temporary folder,
IMAP over implicit TLS (a trustme certificate) on a free port, one passwd-file user whose mail is a Maildir that
Postfix delivers into (the print room's bounce mailbox)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import trustme

from tests.postfix_server import apt_install, wait_listening

USER, PASSWORD = "bounces", "Pässwort-42"


def ensure_dovecot_installed() -> str | None:
    """Installs Debian's dovecot-imapd if it is missing; returns why it cannot be had, or None."""
    if shutil.which("dovecot"):
        return None
    return apt_install("dovecot-imapd")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DovecotServer:
    def __init__(self, ca: trustme.CA, maildir: Path) -> None:
        """`maildir`: the mailbox's folder (Postfix's virtual delivery writes there as `nobody`)."""
        self.root = Path(tempfile.mkdtemp(prefix="printroom-dovecot-"))
        self.root.chmod(0o755)
        self.maildir, self.ca = maildir, ca
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> DovecotServer:
        nobody = pwd.getpwnam("nobody")
        for folder in (self.maildir / "new", self.maildir / "cur", self.maildir / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        for path in (self.maildir, *self.maildir.rglob("*")):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        self.ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(self.root / "server.pem"))
        (self.root / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{nobody.pw_uid}:{nobody.pw_gid}::{self.maildir}::\n", encoding="utf-8"
        )
        (self.root / "dovecot.conf").write_text(
            f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
instance_name = printroom-test-{self.port}
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.root}/server.pem
ssl_key = <{self.root}/server.pem
auth_mechanisms = plain login
# A refused login is answered at once: Dovecot waits 2 s, and doubles the wait for each failure from the same IP
# (its anvil's auth penalty); the tests refuse some on purpose.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.root}/passwd
}}
mail_location = maildir:{self.maildir}:LAYOUT=fs
namespace inbox {{
  inbox = yes
  separator = /
}}
first_valid_uid = 1
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""",
            encoding="utf-8",
        )
        self._process = subprocess.Popen(["dovecot", "-F", "-c", str(self.root / "dovecot.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_listening("dovecot", self.port, self.log, self._exited)
        return self

    def _exited(self) -> str | None:
        """What dovecot said before it exited, if it has."""
        process = self._process
        if process is None or process.poll() is None:
            return None
        return process.stdout.read().decode(errors="replace") if process.stdout else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def folder(self, name: str) -> Path:
        """A folder's Maildir (LAYOUT=fs: `Printroom/Unmatched` is a sub-folder of the mailbox's)."""
        return self.maildir if name == "INBOX" else self.maildir / name

    def count(self, name: str) -> int:
        where = self.folder(name)
        return sum(1 for sub in ("new", "cur") if (where / sub).is_dir() for _ in (where / sub).iterdir())

    def deliver(self, raw: bytes, name: str = "INBOX") -> None:
        """A message dropped into a folder as a delivery agent would (for tests of what Postfix does not write)."""
        nobody, where = pwd.getpwnam("nobody"), self.folder(name)
        unique = f"{time.time_ns()}.{os.getpid()}.printroom-test"
        (where / "tmp" / unique).write_bytes(raw)
        os.chown(where / "tmp" / unique, nobody.pw_uid, nobody.pw_gid)
        os.rename(where / "tmp" / unique, where / "new" / unique)
