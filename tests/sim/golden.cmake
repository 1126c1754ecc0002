# Golden test of flowq-sim's virtual mode (tests/sim/CMakeLists.txt):
#   cmake -DSIM=<flowq-sim> -DSPEC=<spec.yaml> -DGOLDEN=<expected.json>
#         -DOUT=<actual.json> [-DTUNE=<args file>] -P golden.cmake
# runs `flowq-sim run SPEC --virtual --progress never --json OUT` (with
# TUNE: `flowq-sim tune SPEC --virtual --progress never ARGS... --json OUT`,
# ARGS the file's lines, one argument per line, e.g. --vary and its value)
# and fails unless it exits 0 and OUT equals GOLDEN byte for byte. To record
# a new golden file after an intended change, copy OUT over GOLDEN (and say
# why in the commit).
set(cmd run)
set(args)
if(TUNE)
	set(cmd tune)
	file(STRINGS ${TUNE} args)
endif()
execute_process(
	COMMAND ${SIM} ${cmd} ${SPEC} --virtual --progress never ${args} --json ${OUT}
	RESULT_VARIABLE rc
	OUTPUT_QUIET)
if(NOT rc EQUAL 0)
	message(FATAL_ERROR "flowq-sim ${cmd} ${SPEC} exited with ${rc}")
endif()
execute_process(
	COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT} ${GOLDEN}
	RESULT_VARIABLE diff)
if(NOT diff EQUAL 0)
	message(FATAL_ERROR "${OUT} differs from ${GOLDEN} (virtual runs must be "
		"byte-identical; re-record the golden file only for an intended change)")
endif()
