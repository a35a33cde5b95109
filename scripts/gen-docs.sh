#!/usr/bin/env bash
# Regenerates the option reference in docs/config.md from the binary's own option tables:
#   scripts/gen-docs.sh [path/to/vitalgate]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/debug/src/vitalgate}
begin='<!-- BEGIN GENERATED: vitalgate help config -->'
end='<!-- END GENERATED -->'
ref=$("$bin" help config)
python3 - "$begin" "$end" "$ref" <<'PY'
import sys
begin, end, ref = sys.argv[1:4]
path = "docs/config.md"
text = open(path).read()
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + begin + "\n\n" + ref.rstrip("\n") + "\n\n" + end + tail)
PY
echo "docs/config.md updated"
