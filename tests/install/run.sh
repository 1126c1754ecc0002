#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds and runs a
# consumer against it, either with find_package(flowq) or with pkg-config.
#   run.sh find_package|pkg_config BUILD_DIR SOURCE_DIR
set -euo pipefail
mode=$1 build=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

# Every public header of every component is installed, merged into one
# include/flowq (a component missing from install(DIRECTORY) would leave
# consumers of its header with a broken install).
for h in "$src"/*/include/flowq/*.h; do
	# (Outputs are captured before grep: with pipefail, grep -q exiting at
	# its first match can fail the pipeline through the writer's SIGPIPE.)
	found=$(find "$prefix" -path "*/include/flowq/$(basename "$h")")
	if [ -z "$found" ]; then
		echo "public header not installed: ${h#"$src"/}" >&2
		exit 1
	fi
done

case "$mode" in
find_package)
	cmake -S "$src/tests/install/consumer" -B "$work/c" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
	cmake --build "$work/c" >/dev/null
	"$work/c/consumer_shared"
	"$work/c/consumer_static"
	"$work/c/yaml_shared"
	"$work/c/yaml_static"
	# The shared consumer must use the installed library, not the build tree's.
	deps=$(ldd "$work/c/consumer_shared")
	grep -q "$prefix/.*libflowq.so" <<<"$deps" || {
		echo "consumer_shared does not load the installed libflowq.so" >&2
		exit 1
	}
	;;
pkg_config)
	pc=$(find "$prefix" -name flowq.pc | head -1)
	[ -n "$pc" ] || { echo "flowq.pc was not installed" >&2; exit 1; }
	export PKG_CONFIG_PATH
	PKG_CONFIG_PATH=$(dirname "$pc")
	libdir=$(pkg-config --variable=libdir flowq)
	# shellcheck disable=SC2046
	cc -std=c11 -Wall -Wextra -Werror "$src/tests/install/consumer/main.c" \
		$(pkg-config --cflags --libs flowq) -o "$work/pc_shared"
	LD_LIBRARY_PATH="$libdir" "$work/pc_shared"
	# Static: the .pc's Libs and Libs.private, with -lflowq pinned to the
	# archive (-l:libflowq.a) so the shared library cannot be picked.
	# shellcheck disable=SC2046
	cc -std=c11 "$src/tests/install/consumer/main.c" \
		$(pkg-config --static --cflags flowq) \
		$(pkg-config --static --libs flowq | sed 's/-lflowq\b/-l:libflowq.a/') -o "$work/pc_static"
	"$work/pc_static"
	deps=$(ldd "$work/pc_static")
	if grep -q libflowq <<<"$deps"; then
		echo "pc_static links libflowq dynamically" >&2
		exit 1
	fi
	# The YAML loader, shared and static (libyaml from Requires.private).
	# shellcheck disable=SC2046
	cc -std=c11 -Wall -Wextra -Werror "$src/tests/install/consumer/yaml.c" \
		$(pkg-config --cflags --libs flowq) -o "$work/pc_yaml_shared"
	LD_LIBRARY_PATH="$libdir" "$work/pc_yaml_shared"
	# shellcheck disable=SC2046
	cc -std=c11 "$src/tests/install/consumer/yaml.c" \
		$(pkg-config --static --cflags flowq) \
		$(pkg-config --static --libs flowq | sed 's/-lflowq\b/-l:libflowq.a/') -o "$work/pc_yaml_static"
	"$work/pc_yaml_static"
	;;
*)
	echo "usage: run.sh find_package|pkg_config BUILD_DIR SOURCE_DIR" >&2
	exit 2
	;;
esac
