#!/usr/bin/env bash
# scripts/consumer_check.sh - uses raft the way users get it, from outside the project.
#
# Installs raft into two staging folders (meson's install, configured with -Dinstall_only=true,
# and CMake's), then builds and runs each consumer project of tests/consumer/ against them:
# pkg-config with a Makefile (g++ and clang++), CMake find_package (g++ on meson's install,
# clang++ on CMake's), CMake add_subdirectory and FetchContent of this source tree, meson with
# the installed raft (pkg-config) and with this source tree as a subproject. Every consumer
# builds tests/consumer/commit_one.cpp (copied in as app.cpp) with -Wall -Wextra -Werror; the
# program commits one command on a three-node cluster and exits 0. Also checked: the recipes
# in docs/using.md are the consumer projects' files word for word, the installed versions
# (raft.pc, raftConfigVersion.cmake) are meson.build's project version, and the Clang-only
# coroutine defines reach clang++ through raft::raft and not g++.
#
# Needs (Debian packages): g++ clang-14 meson ninja-build pkg-config make cmake libasio-dev
# (not doctest-dev: nothing of the project's own is built). Installs nothing outside its work
# folder, a new one under /tmp, removed at the end unless KEEP=1. Takes about a minute.
# Exit 0 only if every step passed; a failing step's log is printed.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
raft_pick_clang

for tool in g++ "$CLANGXX" meson ninja pkg-config make cmake; do
  if ! command -v "$tool" >/dev/null; then
    echo "consumer_check: $tool not found (apt-get install g++ clang-14 meson ninja-build pkg-config make cmake)" >&2
    exit 1
  fi
done

work=$(mktemp -d /tmp/raft-consumer.XXXXXX)
if [[ ${KEEP:-0} == 1 ]]; then
  trap 'echo "work folder kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
mkdir "$work/logs"
consumers=$raft_root/tests/consumer
warnings="-Wall -Wextra -Werror"
step_number=0

# run NAME COMMAND...: runs COMMAND (in the current folder), its output in logs/NAME.log;
# prints the command, and on failure the log's end, and exits.
run() {
  local log=$work/logs/$1.log shown
  shift
  printf -v shown '%q ' "$@"
  echo "    \$ $shown"
  if ! "$@" >"$log" 2>&1; then
    echo "FAILED: $*" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

step() {
  step_number=$((step_number + 1))
  echo "== $step_number. $*   [at $SECONDS s]"
}

fail() {
  echo "FAILED: $*" >&2
  exit 1
}

# new_project NAME CONSUMER: a fresh copy of tests/consumer/CONSUMER in $work/NAME with the test
# program as app.cpp; prints the copy's path.
new_project() {
  local dir=$work/$1
  cp -r "$consumers/$2" "$dir"
  cp "$consumers/commit_one.cpp" "$dir/app.cpp"
  echo "$dir"
}

# Each file named in docs/using.md by a line `<!-- consumer: PATH -->` must equal the fenced code
# block that follows that line.
check_docs_recipes() {
  local doc=$raft_root/docs/using.md count=0 path
  while IFS= read -r path; do
    awk -v want="$path" '
      $0 == "<!-- consumer: " want " -->" { armed = 1; next }
      armed && /^```/ { if (inside) exit; inside = 1; next }
      inside { print }' "$doc" >"$work/recipe"
    if ! diff -u "$raft_root/$path" "$work/recipe" >"$work/logs/recipe.diff"; then
      cat "$work/logs/recipe.diff" >&2
      fail "docs/using.md's recipe differs from $path"
    fi
    count=$((count + 1))
  done < <(sed -n 's/^<!-- consumer: \(.*\) -->$/\1/p' "$doc")
  ((count > 0)) || fail "no <!-- consumer: PATH --> recipes in docs/using.md"
  echo "    $count recipes match their files"
}

# expect_defines COMPILE_COMMANDS yes|no: whether Clang's coroutine defines are on the command
# line that compiled app.cpp.
expect_defines() {
  local found=no
  grep -q -- '-DASIO_HAS_CO_AWAIT=1' "$1" && grep -q -- '-DASIO_HAS_STD_COROUTINE=1' "$1" && found=yes
  [[ $found == "$2" ]] || fail "Clang's coroutine defines on the command line: $found, expected $2 ($1)"
  echo "    coroutine defines on the command line: $found, as expected"
}

# cmake_consumer NAME CONSUMER COMPILER [cmake options...]: configures, builds and runs a CMake
# consumer project; leaves its compile_commands.json in $work/NAME/build.
cmake_consumer() {
  local name=$1 consumer=$2 compiler=$3 dir
  shift 3
  dir=$(new_project "$name" "$consumer")
  [[ $consumer == cmake/add_subdirectory ]] && ln -s "$raft_root" "$dir/raft"
  cd "$dir"
  run "$name-configure" cmake -S . -B build -G Ninja -DCMAKE_CXX_COMPILER="$compiler" \
    -DCMAKE_CXX_FLAGS="$warnings" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@"
  run "$name-build" cmake --build build
  run "$name-run" build/app
}

step "the recipes in docs/using.md are the consumer projects' files"
check_docs_recipes

step "meson install (install_only) into a staging folder"
cd "$work"
run meson-setup meson setup build-meson "$raft_root" -Dinstall_only=true --prefix=/usr/local
run meson-install meson install -C build-meson --destdir "$work/stage-meson"
meson_prefix=$work/stage-meson/usr/local
grep -h "ASIO_VERSION" "$work/logs/meson-setup.log" | sed 's/^/    /'

step "CMake install into a second staging folder"
run cmake-setup cmake -S "$raft_root" -B build-cmake -G Ninja
run cmake-install cmake --install build-cmake --prefix "$work/stage-cmake"
cmake_prefix=$work/stage-cmake
grep -h "ASIO_VERSION" "$work/logs/cmake-setup.log" | sed 's/^/    /'

step "installed versions are meson.build's project version"
version=$(meson introspect --projectinfo "$work/build-meson" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
pc_version=$(PKG_CONFIG_PATH=$meson_prefix/share/pkgconfig pkg-config --modversion raft)
for prefix in "$meson_prefix" "$cmake_prefix"; do
  file=$prefix/share/cmake/raft/raftConfigVersion.cmake
  grep -qx "set(PACKAGE_VERSION \"$version\")" "$file" || fail "$file does not say version $version"
done
[[ $pc_version == "$version" ]] || fail "raft.pc says version $pc_version, meson.build $version"
echo "    meson.build, raft.pc and both raftConfigVersion.cmake: $version"

step "pkg-config: the Makefile against meson's install, with g++ and with $CLANGXX"
for compiler in g++ "$CLANGXX"; do
  dir=$(new_project "pkgconfig-$compiler" pkgconfig)
  cd "$dir"
  run "pkgconfig-$compiler-build" env PKG_CONFIG_PATH="$meson_prefix/share/pkgconfig" \
    CXX="$compiler" CXXFLAGS="$warnings" make
  grep -q -- "-I$meson_prefix/share/pkgconfig/../../include" "$work/logs/pkgconfig-$compiler-build.log" ||
    fail "the compile did not take raft's headers from the staging folder"
  run "pkgconfig-$compiler-run" ./app
done

step "CMake find_package: g++ against meson's install"
cmake_consumer find-package-gcc cmake/find_package g++ -DCMAKE_PREFIX_PATH="$meson_prefix"
expect_defines build/compile_commands.json no
grep -q -- "$meson_prefix/include" build/compile_commands.json ||
  fail "raft::raft did not take raft's headers from meson's staging folder"

step "CMake find_package: $CLANGXX against CMake's install"
cmake_consumer find-package-clang cmake/find_package "$CLANGXX" -DCMAKE_PREFIX_PATH="$cmake_prefix"
expect_defines build/compile_commands.json yes
grep -q -- "$cmake_prefix/include" build/compile_commands.json ||
  fail "raft::raft did not take raft's headers from CMake's staging folder"

step "CMake add_subdirectory of the source tree (a symbolic link raft/), g++"
cmake_consumer add-subdirectory cmake/add_subdirectory g++

step "CMake FetchContent, the source tree given as FETCHCONTENT_SOURCE_DIR_RAFT (no download), g++"
cmake_consumer fetchcontent cmake/fetchcontent g++ -DFETCHCONTENT_SOURCE_DIR_RAFT="$raft_root"

step "meson: dependency('raft') from meson's install (pkg-config, fallback off), g++"
dir=$(new_project meson-installed meson)
cd "$dir"
run meson-installed-setup env PKG_CONFIG_PATH="$meson_prefix/share/pkgconfig" CXX=g++ \
  meson setup build --wrap-mode=nofallback -Dwarning_level=2 -Dwerror=true
run meson-installed-build ninja -C build
run meson-installed-run build/app

step "meson: the source tree as subproject (a symbolic link subprojects/raft), g++"
dir=$(new_project meson-subproject meson)
mkdir "$dir/subprojects"
ln -s "$raft_root" "$dir/subprojects/raft"
cd "$dir"
run meson-subproject-setup env CXX=g++ meson setup build --force-fallback-for=raft \
  -Dwarning_level=2 -Dwerror=true
grep -q "Subproject raft finished" "$work/logs/meson-subproject-setup.log" ||
  fail "meson did not use the subproject"
run meson-subproject-build ninja -C build
run meson-subproject-run build/app

echo "== consumer check passed: $step_number steps, $SECONDS s"
