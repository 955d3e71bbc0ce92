# `blip2 generate` against transformers: runs the CLI on a fixture's inputs with a meta.json
# generate case's options and compares the printed ids with the case's sequences.
#   cmake -DBLIP2=<cli> -DMODEL=<dir> -DFIXTURE=<fixture dir> -DCASE=<name> -DFLAGS="--num-beams|4" -P check_generate.cmake
# (FLAGS separated by | so that they pass through add_test as one argument)
string(REPLACE "|" ";" FLAGS "${FLAGS}")
execute_process(COMMAND ${BLIP2} generate --model ${MODEL} --inputs ${FIXTURE}/io.safetensors ${FLAGS}
                OUTPUT_VARIABLE got ERROR_VARIABLE log RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "blip2 generate failed (${rc}): ${log}")
endif()
file(READ ${FIXTURE}/meta.json meta)
string(JSON want GET "${meta}" generate ${CASE} sequences)
string(REGEX REPLACE "[ \t\r\n]" "" got "${got}")
string(REGEX REPLACE "[ \t\r\n]" "" want "${want}")
if(NOT got STREQUAL want)
  message(FATAL_ERROR "case ${CASE}: blip2 generate printed\n  ${got}\ntransformers gave\n  ${want}")
endif()
message(STATUS "case ${CASE}: ids equal transformers'")
