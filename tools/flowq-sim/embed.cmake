# cmake -DIN=<file> -DOUT=<file.c> -P embed.cmake: writes OUT, a C source
# that defines sim_default_spec (IN's bytes, NUL-terminated) and
# sim_default_spec_len (their count, without the NUL). Run at build time
# (tools/flowq-sim/CMakeLists.txt), so IN stays the only source.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by embed.cmake: do not edit. */
#include <stddef.h>

extern const unsigned char sim_default_spec[];
extern const size_t sim_default_spec_len;

const unsigned char sim_default_spec[] = {
${bytes}0};
const size_t sim_default_spec_len = ${len};
")
