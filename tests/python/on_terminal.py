"""Run a command with its stdout on a pseudo-terminal, and copy what that terminal got to our
stdout, byte for byte, for tests of what a user's terminal would receive.

Usage: `python on_terminal.py PROGRAM [ARGS...]`. The command's stdin and stderr are ours (the
caller's pipes); only its stdout is the terminal, so `isatty(1)` is true in it. The terminal is
in raw mode: no output processing (a newline stays a newline rather than becoming CR LF), so the
bytes copied are exactly the bytes the command wrote. Exits with the command's exit status (128
plus the signal number if a signal ended it).
"""

import errno
import os
import subprocess
import sys
import tty


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: on_terminal.py PROGRAM [ARGS...]")
    master, slave = os.openpty()
    tty.setraw(slave)
    child = subprocess.Popen(sys.argv[1:], stdout=slave)
    # Ours closed, the master reads end of file (EIO on Linux) once the child's copy closes.
    os.close(slave)
    out = sys.stdout.buffer
    while True:
        try:
            data = os.read(master, 65536)
        except OSError as e:
            if e.errno == errno.EIO:
                break
            raise
        if not data:
            break
        out.write(data)
        out.flush()
    os.close(master)
    status = child.wait()
    sys.exit(128 - status if status < 0 else status)


if __name__ == "__main__":
    main()
