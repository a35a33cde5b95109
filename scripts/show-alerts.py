#!/usr/bin/env python3
"""Prints vitalgate alert events (one JSON object per line on stdin) as a readable table."""
import json
import sys

COLOURS = {"high": "\033[1;31m", "medium": "\033[33m", "low": "\033[36m"}
RESET = "\033[0m"
colour = sys.stdout.isatty()

for line in sys.stdin:
    try:
        a = json.loads(line)
    except ValueError:
        continue
    extra = ""
    if "score" in a:
        extra = " [NEWS2 {} {}]".format(a["score"], a["risk"])
    text = "{}  {:6} {:6} {:12} {:9} {}{}".format(
        a.get("ts", "")[11:19], a.get("patient", ""), a.get("priority", ""), a.get("state", ""),
        a.get("kind", ""), a.get("message", ""), extra)
    if colour and a.get("state") == "active":
        text = COLOURS.get(a.get("priority"), "") + text + RESET
    print(text, flush=True)
