"""A real slapd for the tests: the development directory (images/ldap templates) on a loopback port.

Not a mock: Debian's slapd, started from a private directory, loaded with slapadd, stopped by PID.
"""

import ipaddress
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
    """A running slapd and what a test needs to talk to it.

    Started with TLS, `url` also offers StartTLS and `ldaps_port` is an ldaps:// listener, both with
    a certificate signed by the throw-away CA in `ca_file`."""

    url: str
    port: int
    root_dn: str
    root_password: str
    hub_dn: str
    hub_password: str
    demo_password: str
    process: subprocess.Popen
    workdir: Path
    ldaps_port: int | None = None

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.pem"

    def restart(self) -> None:
        """Stop slapd and start it again on the same ports and data (clients' connections drop)."""
        self.stop()
        self.process = _launch(self.workdir / "slapd.conf", self.port, self.ldaps_port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
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


def _launch(conf: Path, port: int, ldaps_port: int | None) -> subprocess.Popen:
    """slapd listening on 127.0.0.1 (ldap:// on `port`, ldaps:// on `ldaps_port`), once both accept connections."""
    ports = {"ldap": port} | ({"ldaps": ldaps_port} if ldaps_port else {})
    urls = " ".join(f"{scheme}://127.0.0.1:{number}/" for scheme, number in ports.items())
    process = subprocess.Popen(["/usr/sbin/slapd", "-f", str(conf), "-h", urls, "-d", "0"], stderr=subprocess.DEVNULL)
    waiting = set(ports.values())
    deadline = time.monotonic() + 10
    while waiting and time.monotonic() < deadline:
        for number in sorted(waiting):
            try:
                socket.create_connection(("127.0.0.1", number), timeout=0.2).close()
                waiting.discard(number)
            except OSError:
                time.sleep(0.02)
    if waiting:
        process.kill()
        raise RuntimeError(f"slapd did not start listening on {urls} within 10 s")
    return process


def make_certificates(directory: Path, server_name: str = "127.0.0.1") -> dict[str, Path]:
    """A throw-away CA and a server certificate for `server_name` (an IP address or a DNS name, as
    its subjectAltName) signed by it (openssl)."""
    paths = {name: directory / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key")}
    run = lambda *args: subprocess.run(args, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Jovial test CA",
        "-keyout", str(paths["ca-key"]), "-out", str(paths["ca"]))
    csr = directory / "server.csr"
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={server_name}",
        "-keyout", str(paths["server-key"]), "-out", str(csr))
    extensions = directory / "san.cnf"
    try:
        alt_name = f"IP:{ipaddress.ip_address(server_name)}"
    except ValueError:
        alt_name = f"DNS:{server_name}"
    extensions.write_text(f"subjectAltName={alt_name}\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(paths["ca"]), "-CAkey", str(paths["ca-key"]),
        "-CAcreateserial", "-days", "1", "-extfile", str(extensions), "-out", str(paths["server"]))
    return paths


def start_slapd(port: int | None = None, with_tls: bool = False, certificate_name: str = "127.0.0.1") -> Slapd:
    """Start slapd with the demo directory; the caller stops it (and removes `workdir`).

    `with_tls`: also offer StartTLS and ldaps://, with a certificate for `certificate_name` from a
    throw-away CA (`ca_file`); another name than 127.0.0.1 makes a certificate for the wrong host."""
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
        certs = make_certificates(workdir, certificate_name)
        tls_lines = (
            f"TLSCACertificateFile {certs['ca']}\nTLSCertificateFile {certs['server']}\nTLSCertificateKeyFile {certs['server-key']}\n"
        )
    rendered = _render(
        "slapd.conf.in", {"SUFFIX": SUFFIX, "ROOTPW_HASH": _hash(passwords["root"]), "DATA_DIR": str(data), "RUN_DIR": str(run)}
    )
    conf.write_text(tls_lines + rendered)
    ldif = workdir / "demo.ldif"
    ldif.write_text(
        _render(
            "demo.ldif.in",
            {"SUFFIX": SUFFIX, "DEMO_PASSWORD_HASH": _hash(passwords["demo"]), "HUB_PASSWORD_HASH": _hash(passwords["hub"])},
        )
    )
    subprocess.run(["/usr/sbin/slapadd", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
    port = port or free_port()
    ldaps_port = free_port() if with_tls else None
    process = _launch(conf, port, ldaps_port)
    return Slapd(
        url=f"ldap://127.0.0.1:{port}",
        port=port,
        root_dn=f"cn=admin,{SUFFIX}",
        root_password=passwords["root"],
        hub_dn=f"cn=hub,ou=services,{SUFFIX}",
        hub_password=passwords["hub"],
        demo_password=passwords["demo"],
        process=process,
        workdir=workdir,
        ldaps_port=ldaps_port,
    )
