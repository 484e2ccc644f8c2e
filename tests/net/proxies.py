# SPDX-License-Identifier: Apache-2.0
"""Real HTTP proxies on loopback for the net tests: tinyproxy (Basic) and
squid (Basic via basic_ncsa_auth, Digest via digest_file_auth, NTLM via
ntlm_fake_auth, Negotiate via negotiate_kerberos_auth against a loopback MIT
KDC). Each is started in the foreground as a child and stopped by PID;
readiness is its own log line saying it listens."""

import os
import re
import shutil
import subprocess
import sys

from net_common import pc, stop_process

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import chtest  # noqa: E402

free_port = pc.free_port


def wait_listening(log, offset, line, proc, what, timeout=30):
    """Waits until proc writes `line` (a regex) into `log` beyond `offset`, its own
    word that it listens, or exits: woken by inotify and its pidfd, not a timer."""
    def said():
        try:
            with open(log, "rb") as f:
                f.seek(offset)
                return re.search(line.encode(), f.read(), re.M) is not None
        except FileNotFoundError:
            return False

    chtest.wait_for_change([log], lambda: said() or proc.poll() is not None, "%s to listen" % what, timeout,
                           pids=[proc.pid], must=False)
    if proc.poll() is not None:
        raise RuntimeError("%s exited with %d" % (what, proc.returncode))
    if not said():
        raise RuntimeError("%s did not say %r in %s" % (what, line, log))


class Daemon:
    """A child in the foreground, listening on self.port, logging into workdir; stopped by PID.
    It listens once it has written ready_line (a regex; {port} is its port) into ready_log
    (in workdir; None: its stderr)."""
    name = "daemon"
    ready_log = None
    ready_line = None

    def _start(self, cmd, workdir, env=None):
        stderr = os.path.join(workdir, "%s.stderr" % self.name)
        ready_log = os.path.join(workdir, self.ready_log) if self.ready_log else stderr
        offset = os.path.getsize(ready_log) if os.path.exists(ready_log) else 0  # started again: a new line
        self.log = open(stderr, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, **env) if env else None)
        try:
            wait_listening(ready_log, offset, self.ready_line.format(port=self.port), self.proc, self.name)
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


class Proxy(Daemon):
    name = "proxy"

    def url(self):
        return "http://127.0.0.1:%d" % self.port


class Tinyproxy(Proxy):
    name = "tinyproxy"
    ready_line = r"Starting main loop\. Accepting connections\.$"  # -d: its log on stderr

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


class Kdc(Daemon):
    """A loopback MIT Kerberos KDC (krb5kdc in the foreground, stopped by PID) for the
    realm CALLHOME.TEST, everything in workdir: its krb5.conf and kdc.conf (named by
    KRB5_CONFIG and KRB5_KDC_PROFILE, never /etc), a database with the user principal
    device and the proxy's service principal HTTP/localhost, whose key is in
    self.keytab. kinit(ccache) gets the user's ticket-granting ticket into a cache."""
    name = "krb5kdc"
    ready_log = "kdc.log"
    ready_line = r"commencing operation$"
    REALM = "CALLHOME.TEST"
    PROGRAMS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")

    def __init__(self, workdir, user="device", password="Kerberos-Pass-1"):
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)  # squid's helper reads krb5.conf and the keytab as proxy
        self.workdir, self.user, self.password = workdir, user, password
        self.port = free_port()
        self.keytab = os.path.join(workdir, "http.keytab")
        self.krb5_conf = os.path.join(workdir, "krb5.conf")
        with open(self.krb5_conf, "w") as f:
            f.write("[libdefaults]\n default_realm = %s\n dns_lookup_kdc = false\n dns_lookup_realm = false\n"
                    " rdns = false\n dns_canonicalize_hostname = false\n udp_preference_limit = 1\n"
                    "[realms]\n %s = {\n  kdc = 127.0.0.1:%d\n }\n[domain_realm]\n localhost = %s\n"
                    % (self.REALM, self.REALM, self.port, self.REALM))
        os.chmod(self.krb5_conf, 0o644)
        kdc_conf = os.path.join(workdir, "kdc.conf")
        with open(kdc_conf, "w") as f:
            f.write("[kdcdefaults]\n kdc_ports = %d\n kdc_tcp_ports = %d\n[realms]\n %s = {\n"
                    "  database_name = %s/principal\n  key_stash_file = %s/stash\n  acl_file = %s/kadm5.acl\n"
                    "  kdc_ports = %d\n  kdc_tcp_ports = %d\n }\n[logging]\n kdc = FILE:%s/kdc.log\n"
                    % (self.port, self.port, self.REALM, workdir, workdir, workdir, self.port, self.port, workdir))
        self.env = {"KRB5_CONFIG": self.krb5_conf, "KRB5_KDC_PROFILE": kdc_conf}
        self._run(["kdb5_util", "-r", self.REALM, "create", "-s", "-P", "Master-Pass-1"])
        self._admin("addprinc -pw %s %s" % (password, user))
        self._admin("addprinc -randkey HTTP/localhost")
        self._admin("ktadd -k %s HTTP/localhost" % self.keytab)
        os.chmod(self.keytab, 0o644)
        self._start(["krb5kdc", "-n", "-P", os.path.join(workdir, "kdc.pid")], workdir, env=self.env)

    def _env(self, **extra):
        return dict(os.environ, **self.env, **extra)

    def _run(self, argv, **kw):
        return subprocess.run(argv, env=self._env(), check=True, capture_output=True, timeout=60, **kw)

    def _admin(self, query):
        self._run(["kadmin.local", "-r", self.REALM, "-q", query])

    def kinit(self, ccache):
        """The user's TGT into the cache file ccache; returns the client's environment."""
        subprocess.run(["kinit", self.user], input=(self.password + "\n").encode(), check=True,
                       capture_output=True, timeout=60, env=self._env(KRB5CCNAME="FILE:" + ccache))
        return {"KRB5_CONFIG": self.krb5_conf, "KRB5CCNAME": "FILE:" + ccache}


class Squid(Proxy):
    """scheme: "basic", "digest", "ntlm" or "negotiate" (the only scheme it offers);
    negotiate needs kdc, a Kdc (its HTTP/localhost key)."""
    name = "squid"
    ready_log = "cache.log"
    ready_line = r"Accepting HTTP Socket connections at \S+ local=127\.0\.0\.1:{port} "
    HELPERS = "/usr/lib/squid"

    def __init__(self, workdir, scheme, user="device", password="s3cret-Pass", kdc=None):
        self.port = free_port()
        os.makedirs(workdir, exist_ok=True)
        shutil.chown(workdir, "proxy", "proxy")
        self.access_log = os.path.join(workdir, "access.log")
        conf = ["http_port 127.0.0.1:%d" % self.port, "pid_filename none", "cache deny all",
                "access_log stdio:%s" % self.access_log, "cache_log %s" % os.path.join(workdir, "cache.log"),
                "coredump_dir %s" % workdir, "cache_effective_user proxy", "shutdown_lifetime 0 seconds",
                "pinger_enable off"]  # no ICMP helper: it would outlive squid
        env = None
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
        elif scheme == "negotiate":
            conf += ["auth_param negotiate program %s/negotiate_kerberos_auth -s HTTP/localhost@%s"
                     % (self.HELPERS, kdc.REALM), "auth_param negotiate children 2"]
            env = {"KRB5_CONFIG": kdc.krb5_conf, "KRB5_KTNAME": "FILE:" + kdc.keytab}
        else:
            raise ValueError(scheme)
        conf += ["acl authed proxy_auth REQUIRED", "acl CONNECT method CONNECT",
                 "http_access allow CONNECT authed", "http_access deny all"]
        path = os.path.join(workdir, "squid.conf")
        self._write(workdir, "squid.conf", "\n".join(conf) + "\n")
        self._start(["squid", "-N", "-f", path], workdir, env=env)

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

    def access_with(self, text, timeout=20):
        """The access log once it holds `text`: squid writes a tunnel's line when the
        tunnel has closed, a moment after the client saw its answer."""
        try:
            chtest.wait_for_change([self.access_log], lambda: text in self.access(), "the access log", timeout)
        except AssertionError:
            pass  # the caller's check says what is missing
        return self.access()
