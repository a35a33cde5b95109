#!/usr/bin/env python3
"""Stand-in for a vendor bridge: copies lines from a named pipe to stdout, reopening the pipe
when the writer closes it, until killed."""
import sys

path = sys.argv[1]
while True:
    with open(path, "r") as fifo:
        for line in fifo:
            sys.stdout.write(line)
            sys.stdout.flush()
