"""Real peers for end-to-end tests: a hotline server process, SIPp, baresip and PJSIP
phone runners.

Everything runs on loopback with free ports and is bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host``."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port")


def wait_listening(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Wait until something accepts TCP connections on ``port``.

    :raises OSError: nothing did within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def sip_options(host: str, port: int, timeout: float = 0.5) -> bytes | None:
    """Send one OPTIONS over UDP and return the raw response (or None on timeout)."""
    call_id = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        lport = s.getsockname()[1]
        msg = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{call_id[:12]};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1>;tag={call_id[:6]}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        s.settimeout(timeout)
        s.sendto(msg, (host, port))
        try:
            return s.recv(65535)
        except OSError:
            return None


@dataclass
class HotlineProcess:
    """A ``hotline serve`` subprocess."""

    config: Path
    data_dir: Path
    sip_port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    def start(self, timeout: float = 20.0) -> None:
        self.log_path = self.data_dir / "hotline.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 — closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve", "--config", str(self.config),
             "--grace", "3"],
            cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hotline exited early:\n{self.log()}")
            if sip_options("127.0.0.1", self.sip_port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"hotline did not answer OPTIONS within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def metric(server: HotlineProcess, name: str) -> float:
    """The value of the unlabelled gauge or counter ``name`` in the server's /metrics."""
    port = server.http_port  # type: ignore[attr-defined]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics:\n" + text[:2000])


def process_tree(pid: int) -> set[int]:
    """``pid`` and its descendants (a server and its media workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {pid}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def write_site(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def sipp_bin() -> str:
    exe = shutil.which("sipp")
    if exe is None:
        raise RuntimeError("sipp is not installed: run `make test` (installs Debian sip-tester)")
    return exe


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stats: dict[str, int]


def parse_sipp_stats(text: str) -> dict[str, int]:
    """Read 'Successful call' / 'Failed call' counters from sipp's final screen."""
    out: dict[str, int] = {}
    for name in ("Successful call", "Failed call"):
        m = re.findall(rf"{name}\s*\|\s*(\d+)\s*\|\s*(\d+)", text)
        if m:
            out[name] = int(m[-1][1])
    return out


def run_sipp(args: list[str], cwd: Path, timeout: float) -> SippResult:
    """Run sipp in the foreground until it exits (bounded by ``timeout``)."""
    cmd = [sipp_bin(), *args, "-nostdin", "-trace_screen", "-trace_err"]
    proc = subprocess.run(cmd, cwd=str(cwd), capture_output=True, timeout=timeout)
    screens = sorted(cwd.glob("*_screen.log"))
    text = proc.stdout.decode(errors="replace")
    if screens:
        text += screens[-1].read_text(errors="replace")
    return SippResult(proc.returncode, text, parse_sipp_stats(text))


def start_sipp(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start a long-running sipp (e.g. a uas) in the background."""
    cmd = [sipp_bin(), *args, "-nostdin", "-trace_screen", "-trace_err"]
    return subprocess.Popen(cmd, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


class Baresip:
    """A headless baresip driven through its ctrl_tcp module (netstring JSON).

    Audio: the source plays ``source_wav`` (aufile), the player is a dead-end
    aubridge, and the sndfile filter dumps what is sent and received as WAV files
    into ``workdir`` (``dump-*-enc.wav`` = sent, ``dump-*-dec.wav`` = received).
    """

    def __init__(self, workdir: Path, account: str, source_wav: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_port()
        self.ctrl_port = free_port(kind=socket.SOCK_STREAM)
        while self.ctrl_port in (self.sip_port, self.sip_port + 1):
            self.ctrl_port = free_port(kind=socket.SOCK_STREAM)
        (workdir / "config").write_text(
            "poll_method epoll\n"
            "net_interface 127.0.0.1\n"
            f"sip_listen 127.0.0.1:{self.sip_port}\n"
            "audio_player aubridge,nil\n"
            f"audio_source aufile,{source_wav}\n"
            "audio_alert aubridge,nil\n"
            "module_path /usr/lib/baresip/modules\n"
            "module g711.so\nmodule aufile.so\nmodule aubridge.so\nmodule sndfile.so\n"
            "module_app account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\n"
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}\n"
            f"snd_path {workdir}\n"
        )
        (workdir / "accounts").write_text(account + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self._buf = b""
        self.events: list[dict[str, object]] = []
        self.log_path = workdir / "baresip.log"

    def start(self, timeout: float = 10.0) -> None:
        exe = shutil.which("baresip")
        if exe is None:
            raise RuntimeError("baresip is not installed: run `make test` (installs it)")
        log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([exe, "-f", str(self.workdir)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), 0.5)
                self.sock.settimeout(0.2)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"baresip did not start:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def command(self, command: str, params: str = "") -> None:
        import json

        assert self.sock is not None
        body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def _read(self) -> None:
        import json

        assert self.sock is not None
        try:
            chunk = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return
        except OSError:
            return
        self._buf += chunk
        while True:
            colon = self._buf.find(b":")
            if colon < 0:
                return
            n = int(self._buf[:colon])
            if len(self._buf) < colon + 1 + n + 1:
                return
            body = self._buf[colon + 1 : colon + 1 + n]
            self._buf = self._buf[colon + 2 + n :]
            try:
                self.events.append(json.loads(body))
            except ValueError:
                pass

    def wait_event(self, predicate, timeout: float = 10.0) -> dict[str, object]:  # type: ignore[no-untyped-def]
        """Wait for an event (``{"event": true, "type": "CALL_ESTABLISHED", ...}``)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            self._read()
            while seen < len(self.events):
                ev = self.events[seen]
                seen += 1
                if predicate(ev):
                    return ev
        types = [e.get("type") for e in self.events]
        raise TimeoutError(f"no matching baresip event in {timeout}s; saw {types}\n{self.log()}")

    def stop(self) -> None:
        if self.sock is not None:
            try:
                self.command("quit")
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def wait_log(self, pattern: str, timeout: float = 10.0) -> str:
        """Wait until baresip's console output matches ``pattern`` (a regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            m = rx.search(text)
            if m:
                return m.group(0)
            time.sleep(0.1)
        raise TimeoutError(f"baresip output never matched {pattern!r}:\n{self.log()}")


class PjPhone:
    """A PJSIP phone (tests/e2e/pjphone.py) in a subprocess: commands in, events out.

    Each call's received audio is recorded to ``workdir/call-N.wav``; ``tone`` is what
    the phone sends into every call.
    """

    def __init__(self, workdir: Path, user: str, password: str, server_port: int,
                 tone: Path, answer_after: float = 0.0) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.user = user
        cfg = {"user": user, "password": password, "server": f"127.0.0.1:{server_port}",
               "port": free_port(), "tone": str(tone), "dir": str(workdir),
               "answer_after": answer_after}
        (workdir / "phone.json").write_text(json.dumps(cfg))
        self.events: list[dict[str, Any]] = []
        self._seen = 0
        self._buf = b""
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("pjphone.py")),
             str(workdir / "phone.json")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(workdir / "stderr.log", "wb"),  # noqa: SIM115
        )
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]

    def send(self, cmd: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        self.proc.stdin.flush()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def wait(self, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Wait for the next event (after the last one waited for) matching ``match``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read()
            while self._seen < len(self.events):
                ev = self.events[self._seen]
                self._seen += 1
                if all(ev.get(k) == v for k, v in match.items()):
                    return ev
            time.sleep(0.02)
        raise TimeoutError(f"{self.user}: no event {match} in {timeout}s; got {self.events}")

    def has(self, **match: Any) -> bool:
        """Whether any event so far matches ``match``."""
        self._read()
        return any(all(ev.get(k) == v for k, v in match.items()) for ev in self.events)

    def recording(self, call: int) -> Path:
        return self.workdir / f"call-{call}.wav"

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


_PCAP_CALLER_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-11,16
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""


def pcap_caller_scenario(name: str, body: str) -> str:
    """A SIPp carrier scenario: INVITE ``[service]`` offering PCMA and telephone-event,
    ACK the 200, then ``body`` (pauses, ``play_pcap_audio``, the end of the call). Run it
    where a ``pcap`` link points to /usr/share/sip-tester. ``body`` may hold ``{fields}``
    for the caller's ``str.format``."""
    return _PCAP_CALLER_HEAD.format(name=name).replace("{", "{{").replace("}", "}}") \
        + body + "</scenario>\n"


#: The caller's BYE (after a ``pcap_caller_scenario`` head), and its 200.
CALLER_BYE = """  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"""


def server_bye(timeout_ms: int) -> str:
    """Scenario lines: wait up to ``timeout_ms`` for hotline's BYE and answer 200."""
    return f"""  <recv request="BYE" timeout="{timeout_ms}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
"""
