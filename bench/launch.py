"""Run a command and write its peak RSS (KB) to a file: ``python launch.py OUT CMD ...``.

Why a launcher: Linux counts a forked child's copy of its parent's memory in the
child's peak RSS, even after exec. Forked from this small process, the measured
command starts from a few MB instead of from the benchmark's own footprint. The peak
is that of the largest single process in the command's tree (its waited-for
descendants count, each on its own). SIGTERM is passed on to the command.
"""
import os
import signal
import sys

pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
while True:
    try:
        _, status, usage = os.wait4(pid, 0)
        break
    except InterruptedError:
        continue
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
