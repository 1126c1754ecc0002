#!/usr/bin/env bash
# README.md's embedding example must be the file CTest compiles, verbatim, so
# the README can never show code that does not build.
#   readme_example.sh SOURCE_DIR
set -euo pipefail
src=$1
block=$(awk '/^## Embedding example/{s=1} s&&/^```c$/{p=1;next} p&&/^```$/{exit} p' "$src/README.md")
if [ -z "$block" ]; then
	echo "README.md has no C block under '## Embedding example'" >&2
	exit 1
fi
if ! diff -u "$src/tests/install/consumer/main.c" <(printf '%s\n' "$block"); then
	echo "README.md's example differs from tests/install/consumer/main.c" >&2
	exit 1
fi
echo "README example matches tests/install/consumer/main.c"
