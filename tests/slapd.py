"""A real slapd for the tests: the development directory (images/ldap templates) on a loopback port.

Not a mock: Debian's slapd, started from a private directory, loaded with slapadd, stopped by PID.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "images" / "ldap"
SUFFIX = "dc=jovial,dc=test"


@dataclass
class Slapd:
    """A running slapd and what a test needs to talk to it."""

    url: str
    port: int
    root_dn: str
    root_password: str
    hub_dn: str
    hub_password: str
    demo_password: str
    process: subprocess.Popen
    workdir: Path

    def restart(self) -> None:
        """Stop slapd and start it again on the same port and data (clients' connections drop)."""
        self.stop()
        self.process = _launch(self.workdir / "slapd.conf", self.url + "/", self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hash(password: str) -> str:
    return subprocess.run(["slappasswd", "-s", password], check=True, capture_output=True, text=True).stdout.strip()


def _render(template: str, values: dict[str, str]) -> str:
    text = (TEMPLATES / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _launch(conf: Path, url: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen(["/usr/sbin/slapd", "-f", str(conf), "-h", url, "-d", "0"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError("slapd did not start listening within 10 s")


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    paths = {name: directory / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key")}
    run = lambda *args: subprocess.run(args, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Jovial test CA",
        "-keyout", str(paths["ca-key"]), "-out", str(paths["ca"]))
    csr = directory / "server.csr"
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(paths["server-key"]), "-out", str(csr))
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(paths["ca"]), "-CAkey", str(paths["ca-key"]),
        "-CAcreateserial", "-days", "1", "-extfile", str(extensions), "-out", str(paths["server"]))
    return paths


def start_slapd(port: int | None = None, with_tls: bool = False) -> Slapd:
    """Start slapd with the demo directory; the caller stops it (and removes `workdir`).

    `with_tls`: also offer StartTLS, with a certificate from a throw-away CA (`workdir`/ca.pem)."""
    if shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists():
        raise RuntimeError("slapd is not installed: run the README's test command, which installs it")
    workdir = Path(tempfile.mkdtemp(prefix="jovial-slapd-"))
    data, run = workdir / "data", workdir / "run"
    data.mkdir()
    run.mkdir()
    passwords = {"root": "root-secret", "hub": "hub-secret", "demo": "demo-secret"}
    conf = workdir / "slapd.conf"
    tls_lines = ""
    if with_tls:
        certs = make_certificates(workdir)
        tls_lines = f"TLSCACertificateFile {certs['ca']}\nTLSCertificateFile {certs['server']}\nTLSCertificateKeyFile {certs['server-key']}\n"
    rendered = _render("slapd.conf.in", {"SUFFIX": SUFFIX, "ROOTPW_HASH": _hash(passwords["root"]), "DATA_DIR": str(data), "RUN_DIR": str(run)})
    conf.write_text(tls_lines + rendered)
    ldif = workdir / "demo.ldif"
    ldif.write_text(
        _render(
            "demo.ldif.in",
            {"SUFFIX": SUFFIX, "DEMO_PASSWORD_HASH": _hash(passwords["demo"]), "HUB_PASSWORD_HASH": _hash(passwords["hub"])},
        )
    )
    subprocess.run(["/usr/sbin/slapadd", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
    port = port or _free_port()
    url = f"ldap://127.0.0.1:{port}/"
    process = _launch(conf, url, port)
    return Slapd(
        url=url.rstrip("/"),
        port=port,
        root_dn=f"cn=admin,{SUFFIX}",
        root_password=passwords["root"],
        hub_dn=f"cn=hub,ou=services,{SUFFIX}",
        hub_password=passwords["hub"],
        demo_password=passwords["demo"],
        process=process,
        workdir=workdir,
    )
