"""What the benchmarks bench/text.py, bench/files.py and bench/dilation.py share.

Not a benchmark: each of the three imports it (they are run as `python bench/X.py`, so this
folder is on sys.path).

- Processes: spawn() remembers every process it starts; install_cleanup() makes the script's
  exit, however it comes (normal end, SIGTERM, SIGINT), terminate whatever of them is still alive,
  by its PID, and kill it after 5 s. read_line() and reap() are the bounded waits on one process;
  stop() ends processes of a run and forgets them, forget() forgets reaped ones.
- The command line: add_timeout, add_python and parse_args give every script the same
  --timeout and --python options and an absolute --bin-dir; run() turns a Failed into
  `bench/X.py: <reason>` and exit status 1.
- World: the base of each script's World. A temporary folder, the reference servers (mailbox
  server, transit relay) on 127.0.0.1 port 0, an environment with its own HOME and XDG folders
  per side, a wormholed with its own HOME, config and control socket, started and awaited until
  it prints `wormholed ready <socket>`, and fixed codes `<nameplate>-bench-<name>`. Its
  temporary folder is removed at exit.
- Measurements: the clients' peak RSS from GNU time (RSS_WRAP, peak_rss), CPU and VmHWM from
  /proc (stat_cpu, vm_hwm_mib, ThreadSampler), and the formatting the tables share.
"""

import atexit
import os
import platform
import re
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_DIR = os.path.join(REPO, "tests", "python")
# A closed port as transit helper: no relay can be used, every byte stays on loopback.
NO_TRANSIT_HELPER = "tcp:127.0.0.1:1"
STARTED_DAEMON = re.compile(rb"started wormholed \(pid (\d+)\)")
# Peak RSS of a client comes from GNU time: wait4's ru_maxrss of a child of this script also
# counts the memory of this Python process it was forked from (exec records the old address
# space's high-water mark), so it cannot tell a small client's peak.
GNU_TIME = "/usr/bin/time"
RSS_WRAP = [GNU_TIME, "-f", "bench-maxrss-kib %M"]
MAXRSS = re.compile(rb"^bench-maxrss-kib (\d+)$", re.M)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Every process started here, so that exit kills whatever is still alive, by PID.
_children = []


class Failed(Exception):
    pass


def _cleanup():
    for proc in reversed(_children):
        if proc.poll() is None:
            try:
                if proc.stdin:
                    proc.stdin.close()
            except OSError:
                pass
            proc.terminate()
    deadline = time.monotonic() + 5
    for proc in reversed(_children):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


def install_cleanup():
    """At exit, and on SIGTERM or SIGINT, every process spawn() started is ended by its PID."""
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def run(main, script):
    """Runs main(); a Failed becomes `<script>: <reason>` on stderr and exit status 1."""
    try:
        main()
    except Failed as e:
        print(f"{script}: {e}", file=sys.stderr)
        sys.exit(1)


def stepper(script):
    """A function that prints one progress line `<script>: <msg>` to stderr."""
    return lambda msg: print(f"{script}: {msg}", file=sys.stderr, flush=True)


def add_timeout(parser, default):
    parser.add_argument("--timeout", type=float, default=default,
                        help=f"bound in seconds on every single wait (default {default:g})")


def add_python(parser):
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the venv with the reference (default: this one)")


def parse_args(parser):
    """The arguments, with --bin-dir made absolute."""
    args = parser.parse_args()
    args.bin_dir = os.path.abspath(args.bin_dir)
    return args


def spawn(argv, **kwargs):
    proc = subprocess.Popen(argv, **kwargs)
    _children.append(proc)
    return proc


def forget(*procs):
    """Procs have been reaped: exit no longer needs to end them."""
    for proc in procs:
        _children.remove(proc)


def stop(procs, timeout):
    """Terminates those of procs still running (by PID), waits up to timeout for each (then kills
    it), and forgets them."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc in _children:
            _children.remove(proc)


def read_line(proc, timeout, what):
    """The first line of proc's stdout (bytes, without newline), or Failed after timeout."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{what}: no stdout line within {timeout} s (got {buf!r})")
            if not sel.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise Failed(f"{what}: stdout closed before a line (got {buf!r})")
            buf += chunk
    return buf.split(b"\n", 1)[0]


def reap(proc, timeout, what):
    """Waits for proc with wait4; returns (exit status, cpu seconds, peak RSS KiB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss
        if time.monotonic() > deadline:
            proc.kill()
            raise Failed(f"{what}: did not exit within {timeout} s")
        time.sleep(0.002)


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def guard_stderr(path):
    """If wormholectl had to start a daemon of its own, kill it (by its PID) and fail."""
    with open(path, "rb") as f:
        data = f.read()
    m = STARTED_DAEMON.search(data)
    if m:
        os.kill(int(m.group(1)), signal.SIGTERM)
        raise Failed(f"wormholectl started a daemon of its own: {data.decode(errors='replace')}")
    return data


def peak_rss(data):
    """The peak RSS in MiB that GNU time reported at the end of data (stderr bytes), or None."""
    found = MAXRSS.findall(data)
    return int(found[-1]) / 1024 if found else None


def stat_cpu(path):
    """utime+stime in seconds from a /proc/.../stat file, and the thread's name."""
    with open(path) as f:
        data = f.read()
    name = data[data.index("(") + 1:data.rindex(")")]
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, name


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise Failed(f"no VmHWM for pid {pid}")


class ThreadSampler:
    """The last CPU seen for each thread of a process, by thread id."""

    def __init__(self, pid):
        self.pid = pid
        self.seen = {}

    def sample(self):
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:
            return
        for tid in tids:
            try:
                cpu, name = stat_cpu(f"/proc/{self.pid}/task/{tid}/stat")
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
            self.seen[tid] = (name, cpu)

    def by_name(self, base):
        """CPU seconds per thread name, since the base sample."""
        out = {}
        for tid, (name, cpu) in self.seen.items():
            before = base.get(tid, (name, 0.0))[1]
            out[name] = out.get(name, 0.0) + cpu - before
        return out


class World:
    """The base of each benchmark's World: its temporary folder, the binaries, the reference
    servers, one HOME per side, and wormholed daemons."""

    def __init__(self, args, name, *binaries):
        """binaries: the names in --bin-dir that must be executable, checked in this order."""
        self.args = args
        self.name = name
        self.tmp = tempfile.TemporaryDirectory(prefix=f"wormhole-bench-{name}-")
        atexit.register(self.tmp.cleanup)
        self.python = args.python
        self.ctl = os.path.join(args.bin_dir, "wormholectl")
        self.daemon_bin = os.path.join(args.bin_dir, "wormholed")
        for binary in binaries:
            path = os.path.join(args.bin_dir, binary)
            if not os.access(path, os.X_OK):
                raise Failed(f"no executable {path} (build with cargo build --release --bins)")
        self.url = None
        self.nameplate = 100
        self.homes = 0

    def start_server(self, script, name, what):
        """A reference server (tests/python/<script> --port 0); returns (proc, port)."""
        proc = spawn(
            [self.python, os.path.join(PY_DIR, script), "--port", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.tmp.name, f"{name}.err"), "wb"),
        )
        line = read_line(proc, self.args.timeout, what).decode()
        return proc, int(line.split()[1])

    def start_mailbox(self, what):
        """The mailbox server; sets self.url and returns its process."""
        proc, port = self.start_server("mailbox_server.py", "mailbox", what)
        self.url = f"ws://127.0.0.1:{port}/v1"
        return proc

    def home(self, name, **extra):
        """An environment with its own HOME and XDG folders under the temporary folder, the
        mailbox server as relay URL, and the variables of extra."""
        home = os.path.join(self.tmp.name, name)
        os.makedirs(os.path.join(home, "runtime"), mode=0o700)
        env = dict(os.environ)
        for var in ("WORMHOLE_ACCEPT_FILE", "WORMHOLE_APPID", "WORMHOLE_CODE_LENGTH",
                    "WORMHOLED_LOG", "WORMHOLE_TRANSIT_HELPER"):
            env.pop(var, None)
        env.update(
            HOME=home,
            XDG_RUNTIME_DIR=os.path.join(home, "runtime"),
            XDG_CONFIG_HOME=os.path.join(home, ".config"),
            XDG_DATA_HOME=os.path.join(home, ".local/share"),
            XDG_STATE_HOME=os.path.join(home, ".local/state"),
            XDG_CACHE_HOME=os.path.join(home, ".cache"),
            WORMHOLE_RELAY_URL=self.url,
            **extra,
        )
        return env

    def python_home(self):
        """The environment of the Python sides. As on a terminal: the reference's print() reaches
        the pipe when it is called, not at exit (a pipe would otherwise make Python buffer stdout
        until the process ends)."""
        env = self.home("python")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def launch_daemon(self, tag, home, log, **extra):
        """A wormholed in HOME `home` with its own empty config and control socket, advertising
        only 127.0.0.1, stderr to log, extra in its environment; returns (proc, env, socket) once
        it has said `wormholed ready <socket>`."""
        env = self.home(home)
        sock = os.path.join(env["HOME"], "control.sock")
        config = os.path.join(env["HOME"], "wormholed.toml")
        open(config, "w").close()
        env.update(
            WORMHOLED_SOCKET=sock,
            WORMHOLED_CONFIG=config,
            WORMHOLED_HINT_ADDRESSES="127.0.0.1",
            **extra,
        )
        proc = spawn([self.daemon_bin], env=env, cwd=env["HOME"], stdin=subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=open(log, "wb"))
        line = read_line(proc, self.args.timeout, f"wormholed {tag}").decode()
        if line != f"wormholed ready {sock}":
            raise Failed(f"wormholed {tag} said {line!r}")
        return proc, env, sock

    def fresh_daemon(self, tag, log_level):
        """A wormholed for one side of one run, in a new HOME (d1, d2, ...), with a closed port as
        transit helper and WORMHOLED_LOG=log_level; returns (proc, env, socket, log path)."""
        self.homes += 1
        log = os.path.join(self.tmp.name, f"{tag}.daemon.err")
        proc, env, sock = self.launch_daemon(tag, f"d{self.homes}", log,
                                             WORMHOLE_TRANSIT_HELPER=NO_TRANSIT_HELPER,
                                             WORMHOLED_LOG=log_level)
        return proc, env, sock, log

    def reference_cli(self, helper, *argv):
        """The reference CLI (tests/python/wormhole_cli.py) with this mailbox and helper."""
        return [self.python, os.path.join(PY_DIR, "wormhole_cli.py"), "--relay-url", self.url,
                "--transit-helper", helper, *argv]

    def next_code(self):
        self.nameplate += 1
        return f"{self.nameplate}-bench-{self.name}"


def f0(value):
    return f"{value:.0f}"


def f1(value):
    return f"{value:.1f}"


def f2(value):
    return f"{value:.2f}"


def fmt_spread(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def side_name(side):
    return "sender" if side == "send" else "receiver"


def thread_cpu(runs, side):
    """`<thread> <CPU s>, ...`: the mean per run of each wormholed thread name of one side, most
    first (runs: results with "threads" from ThreadSampler.by_name)."""
    names = {}
    for x in runs:
        for tname, cpu in x["threads"][side].items():
            names[tname] = names.get(tname, 0.0) + cpu / len(runs)
    return ", ".join(f"{t} {v:.2f}" for t, v in sorted(names.items(), key=lambda kv: -kv[1])
                     if v > 0)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(load_before, load_after):
    """`- machine: ...` with RAM and all three load averages before and after the runs."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return (f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, {mem_gib:.0f} GiB RAM, "
            f"Linux {platform.release()}, Python {platform.python_version()}; load average "
            f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} before, "
            f"{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} after")
