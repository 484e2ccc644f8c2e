# SPDX-License-Identifier: Apache-2.0
"""Real HTTP proxies on loopback for the net tests: tinyproxy (Basic) and
squid (Basic via basic_ncsa_auth, Digest via digest_file_auth, NTLM via
ntlm_fake_auth). Each is started in the foreground as a child and stopped by
PID; readiness is its port accepting connections."""

import os
import shutil
import socket
import subprocess
import time

from net_common import pc, stop_process

free_port = pc.free_port


def wait_listening(port, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %d" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on %d" % (what, port))


class Proxy:
    name = "proxy"

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _start(self, cmd, workdir):
        self.log = open(os.path.join(workdir, "proxy.stderr"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        try:
            wait_listening(self.port, self.proc, self.name)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        p, self.proc = getattr(self, "proc", None), None
        if p:
            stop_process(p)
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Tinyproxy(Proxy):
    name = "tinyproxy"

    def __init__(self, workdir, user=None, password=None, connect_ports=()):
        self.port = free_port()
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        conf = ["Port %d" % self.port, "Listen 127.0.0.1", "Timeout 60", "MaxClients 16", "Allow 127.0.0.1",
                "LogLevel Info", "User nobody", "Group nogroup"]
        if user:
            conf.append("BasicAuth %s %s" % (user, password))
        conf += ["ConnectPort %d" % p for p in connect_ports]
        path = os.path.join(workdir, "tinyproxy.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        self._start(["tinyproxy", "-d", "-c", path], workdir)


class Squid(Proxy):
    """scheme: "basic", "digest" or "ntlm" (the only scheme it offers)."""
    name = "squid"
    HELPERS = "/usr/lib/squid"

    def __init__(self, workdir, scheme, user="device", password="s3cret-Pass"):
        self.port = free_port()
        os.makedirs(workdir, exist_ok=True)
        shutil.chown(workdir, "proxy", "proxy")
        self.access_log = os.path.join(workdir, "access.log")
        conf = ["http_port 127.0.0.1:%d" % self.port, "pid_filename none", "cache deny all",
                "access_log stdio:%s" % self.access_log, "cache_log %s" % os.path.join(workdir, "cache.log"),
                "coredump_dir %s" % workdir, "cache_effective_user proxy", "shutdown_lifetime 0 seconds",
                "pinger_enable off"]  # no ICMP helper: it would outlive squid
        if scheme == "basic":
            pw = subprocess.run(["openssl", "passwd", "-apr1", password], check=True, capture_output=True,
                                text=True).stdout.strip()
            self._write(workdir, "passwd", "%s:%s\n" % (user, pw))
            conf += ["auth_param basic program %s/basic_ncsa_auth %s/passwd" % (self.HELPERS, workdir),
                     "auth_param basic realm callhome-test"]
        elif scheme == "digest":
            self._write(workdir, "digest", "%s:%s\n" % (user, password))
            conf += ["auth_param digest program %s/digest_file_auth %s/digest" % (self.HELPERS, workdir),
                     "auth_param digest realm callhome-test"]
        elif scheme == "ntlm":
            conf += ["auth_param ntlm program %s/ntlm_fake_auth" % self.HELPERS,
                     "auth_param ntlm children 2"]
        else:
            raise ValueError(scheme)
        conf += ["acl authed proxy_auth REQUIRED", "acl CONNECT method CONNECT",
                 "http_access allow CONNECT authed", "http_access deny all"]
        path = os.path.join(workdir, "squid.conf")
        self._write(workdir, "squid.conf", "\n".join(conf) + "\n")
        self._start(["squid", "-N", "-f", path], workdir)

    @staticmethod
    def _write(workdir, name, text):
        p = os.path.join(workdir, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o644)

    def access(self):
        try:
            with open(self.access_log) as f:
                return f.read()
        except FileNotFoundError:
            return ""
