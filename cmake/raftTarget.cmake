# raftTarget.cmake - what a target needs to use raft, in one place for the two ways of getting
# it: raft's CMakeLists.txt (add_subdirectory, FetchContent) and, installed next to it,
# raftConfig.cmake (find_package).

# raft_find_asio(<hint>) sets the cache variable RAFT_ASIO_INCLUDE_DIR to the folder that holds
# asio.hpp (standalone Asio): the folder the user gave in RAFT_ASIO_INCLUDE_DIR if any, else the
# first one found in <hint> (may be empty) or on the default search paths. It then sets, in the
# caller's scope, RAFT_ASIO_VERSION (that folder's ASIO_VERSION, e.g. 102201 for 1.22.1) and
# RAFT_ASIO_ERROR (empty, or why no usable Asio was found).
function(raft_find_asio hint)
  if(NOT RAFT_ASIO_INCLUDE_DIR)
    find_path(RAFT_ASIO_INCLUDE_DIR asio.hpp HINTS ${hint}
      DOC "Folder holding asio.hpp (standalone Asio), searched ahead of the system headers")
  endif()
  set(RAFT_ASIO_VERSION "" PARENT_SCOPE)
  set(version_header "${RAFT_ASIO_INCLUDE_DIR}/asio/version.hpp")
  if(NOT EXISTS "${RAFT_ASIO_INCLUDE_DIR}/asio.hpp" OR NOT EXISTS "${version_header}")
    set(RAFT_ASIO_ERROR "standalone Asio not found (asio.hpp in RAFT_ASIO_INCLUDE_DIR=${RAFT_ASIO_INCLUDE_DIR}); on Debian/Ubuntu: apt-get install libasio-dev, or set RAFT_ASIO_INCLUDE_DIR to the folder holding asio.hpp" PARENT_SCOPE)
    return()
  endif()
  file(STRINGS "${version_header}" define REGEX "^#[ \t]*define[ \t]+ASIO_VERSION[ \t]+[0-9]+")
  string(REGEX MATCH "ASIO_VERSION[ \t]+([0-9]+)" unused "${define}")
  set(RAFT_ASIO_VERSION "${CMAKE_MATCH_1}" PARENT_SCOPE)
  set(RAFT_ASIO_ERROR "" PARENT_SCOPE)
endfunction()

# raft_target_usage(<target> <raft include folder> <Asio include folder>) gives the INTERFACE
# library <target> raft's usage requirements: raft's headers, the Asio headers (searched ahead of
# the system ones), C++20, Threads::Threads, and Clang's coroutine defines.
function(raft_target_usage target raft_include asio_include)
  target_include_directories(${target} INTERFACE "${raft_include}")
  target_include_directories(${target} SYSTEM INTERFACE "${asio_include}")
  target_compile_features(${target} INTERFACE cxx_std_20)
  target_link_libraries(${target} INTERFACE Threads::Threads)
  # Asio 1.22 recognises C++20 coroutines only on GCC and MSVC; Clang needs to be told. (Asio
  # 1.30 and later recognise Clang's too; defining them again changes nothing there.)
  target_compile_definitions(${target} INTERFACE
    "$<$<COMPILE_LANG_AND_ID:CXX,Clang,AppleClang>:ASIO_HAS_CO_AWAIT=1>"
    "$<$<COMPILE_LANG_AND_ID:CXX,Clang,AppleClang>:ASIO_HAS_STD_COROUTINE=1>")
endfunction()
