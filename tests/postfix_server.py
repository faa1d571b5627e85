"""A private Postfix instance for the interop test: Debian's package, its own config and queue in a temporary
folder, STARTTLS with a trustme certificate, mail for example.org delivered into Maildirs."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trustme

# An international domain is held in its ASCII form, as it arrives; a UTF-8 local part as it is (SMTPUTF8).
MAILBOXES = ("marie@example.org", "ops@example.org", "müller@xn--bcher-kva.example", "info@xn--bcher-kva.example")


def ensure_postfix_installed() -> str | None:
    """Installs Debian's postfix if it is missing; returns why it cannot be had, or None."""
    if shutil.which("postfix"):
        return None
    answers = "postfix postfix/main_mailer_type select Local only\npostfix postfix/mailname string localhost\n"
    return apt_install("postfix", answers)


def apt_install(package: str, answers: str = "") -> str | None:
    """Installs a Debian package for a test that needs its server; returns why it cannot be had, or None."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{package} is not installed, and installing it needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if answers:
        subprocess.run(["debconf-set-selections"], input=answers, text=True, check=True)
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
    install = subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, capture_output=True, text=True)
    return None if install.returncode == 0 else f"apt-get install {package} failed:\n{install.stdout[-2000:]}{install.stderr[-2000:]}"


def wait_listening(name: str, port: int, log: Callable[[], str], died: Callable[[], str | None] = lambda: None) -> None:
    """A server started in the background answers on 127.0.0.1:port within 20 s, or the test says why not."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (why := died()) is not None:
            raise RuntimeError(f"{name} did not start: {why}\n{log()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} is not listening on port {port}:\n{log()}")


class PostfixServer:
    def __init__(self, ca: trustme.CA, mailboxes: tuple[str, ...] = MAILBOXES, transports: dict[str, str] | None = None) -> None:
        """`transports`: domain -> Postfix transport (`smtp:[127.0.0.1]:2525`), for mail relayed onwards."""
        # Not under pytest's tmp root: that is private to root, and Postfix's own user must reach its data.
        root = Path(tempfile.mkdtemp(prefix="printroom-postfix-"))
        root.chmod(0o755)
        self.root, self.conf, self.mail = root, root / "etc", root / "mail"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.ca, self.mailboxes, self.transports = ca, mailboxes, transports or {}

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["postfix", "-c", str(self.conf), *args], capture_output=True, text=True)

    def start(self) -> PostfixServer:
        shutil.copytree("/etc/postfix", self.conf)
        queue, data = self.root / "queue", self.root / "data"
        for folder in (queue, data, self.mail):
            folder.mkdir(parents=True)
        postfix_user, nobody = pwd.getpwnam("postfix"), pwd.getpwnam("nobody")
        os.chown(data, postfix_user.pw_uid, postfix_user.pw_gid)
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        self.ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(self.root / "server.pem"))
        (self.root / "vmailbox").write_text(encoding="utf-8", data="".join(f"{a} {a.split('@')[1]}/{a.split('@')[0]}/\n" for a in self.mailboxes))
        (self.root / "transport").write_text("".join(f"{domain} {to}\n" for domain, to in self.transports.items()), encoding="utf-8")
        settings = {
            "queue_directory": queue, "data_directory": data, "inet_interfaces": "127.0.0.1", "inet_protocols": "ipv4",
            "mydestination": "", "mynetworks": "127.0.0.0/8", "myhostname": "postfix.printroom.test",
            "virtual_mailbox_domains": ", ".join(sorted({a.split("@")[1] for a in self.mailboxes})),
            "transport_maps": f"texthash:{self.root / 'transport'}", "smtputf8_enable": "yes", "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": f"texthash:{self.root / 'vmailbox'}",
            "virtual_uid_maps": f"static:{nobody.pw_uid}", "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "smtpd_tls_chain_files": self.root / "server.pem", "smtpd_tls_security_level": "may",
            "maillog_file": self.root / "postfix.log", "maillog_file_prefixes": self.root,
            "compatibility_level": "3.6", "alias_maps": "", "alias_database": "", "smtpd_tls_received_header": "yes",
        }  # fmt: skip
        subprocess.run(["postconf", "-c", str(self.conf), "-e", *[f"{k}={v}" for k, v in settings.items()]], check=True)
        master = (self.conf / "master.cf").read_text()
        master = re.sub(r"^smtp\s+inet.*$", f"127.0.0.1:{self.port} inet n - n - - smtpd", master, count=1, flags=re.M)
        (self.conf / "master.cf").write_text(master)
        subprocess.run(["postconf", "-e", f"alternate_config_directories={self.conf}"], check=True)
        subprocess.run(["postfix", "-c", str(self.conf), "post-install", "create-missing"], check=True, capture_output=True)
        started = self._postfix("start")
        if started.returncode != 0:
            raise RuntimeError(f"postfix did not start: {started.stderr}\n{self.log()}")
        wait_listening("postfix", self.port, self.log)
        return self

    def stop(self) -> None:
        self._postfix("stop")
        subprocess.run(["postconf", "-X", "alternate_config_directories"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def mailbox(self, address: str) -> list[bytes]:
        local, domain = address.split("@")
        return [p.read_bytes() for p in sorted((self.mail / domain / local / "new").glob("*"))]
