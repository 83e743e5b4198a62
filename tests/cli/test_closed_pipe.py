"""A reader that goes away early (``adfatigue report --format json | head``) ends the command quietly.

Finding of a new-user trial: ``report ... | head`` and ``stats --json | head`` ended with a BrokenPipeError
traceback."""

from __future__ import annotations

import subprocess
import sys

# a command that prints far more than a pipe holds (the stats command's handler stands in for any command)
SCRIPT = """
import services.cli.main as cli
def loud(_parser, _args):
    for i in range(200_000):
        print("row", i)
    return 0
cli.cmd_stats = loud
cli.main(["stats"])
"""


def test_a_closed_pipe_ends_the_command_without_a_traceback():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader leaves, as `head -1` does
    _, err = proc.communicate(timeout=60)
    assert first == b"row 0\n"
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert proc.returncode == 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by its reader
