# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh: installs what the build needs when it is missing.
# Debian/Ubuntu packages: g++ (GCC 12 on Debian 12), meson, ninja, pkg-config, standalone Asio,
# doctest.

raft_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

raft_missing_packages() {
  local missing=()
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  command -v meson >/dev/null 2>&1 || missing+=(meson)
  command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  [[ -f /usr/include/asio.hpp ]] || missing+=(libasio-dev)
  [[ -f /usr/include/doctest/doctest.h ]] || missing+=(doctest-dev)
  [[ -f /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
  echo "${missing[@]}"
}

raft_install_deps() {
  local missing
  missing=$(raft_missing_packages)
  [[ -z $missing ]] && return 0
  if ((EUID != 0)); then
    echo "missing packages: $missing" >&2
    echo "install them (as root: apt-get install $missing) and run this again" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing packages: $missing, and no apt-get to install them with" >&2
    exit 1
  fi
  echo "installing: $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# raft_configure BUILD_DIR [meson options...]: sets up BUILD_DIR, or reconfigures it (which also
# picks up headers added since, for the header self-containment check).
raft_configure() {
  local dir=$1
  shift
  if [[ -f $dir/meson-private/coredata.dat ]]; then
    meson setup --reconfigure "$dir" "$raft_root" "$@"
  else
    meson setup "$dir" "$raft_root" "$@"
  fi
}

# raft_pick_clang: sets CLANGXX to clang++-14 where it is installed, else to clang++, unless the
# caller already set it (scripts/fuzz.sh, scripts/clang_check.sh).
raft_pick_clang() {
  [[ -n ${CLANGXX:-} ]] && return 0
  if command -v clang++-14 >/dev/null; then CLANGXX=clang++-14; else CLANGXX=clang++; fi
}

# raft_install_packages PACKAGE...: installs those of the named Debian packages that are not
# installed yet (as root, with apt-get), for the scripts that need more than the build itself
# (scripts/libcxx_check.sh: clang and libc++ of one LLVM release; scripts/fuzz.sh: clang 14 and libFuzzer). Not
# root: names them and exits 1.
raft_install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  if ((EUID != 0)) || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing packages: ${missing[*]} (as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# raft_test_summary LOG RC: the closing line of a `meson test` run whose output is in LOG and
# whose exit code was RC, in the plain form "tests: N passed, N failed, N skipped".
raft_test_summary() {
  awk -v rc="$2" '
    /^Ok:/              { ok = $2 }
    /^Expected Fail:/   { ok += $3 }
    /^Fail:/            { fail = $2 }
    /^Unexpected Pass:/ { fail += $3 }
    /^Timeout:/         { fail += $2 }
    /^Skipped:/         { skip = $2 }
    END {
      if (ok == "" && fail == "") { ok = 0; fail = (rc == 0 ? 0 : 1) }
      printf "tests: %d passed, %d failed, %d skipped\n", ok, fail, skip
    }' "$1"
}

# raft_meson_test BUILD_DIR [meson test arguments...]: runs the build dir's suites, shows their
# output, ends with raft_test_summary's closing line, and returns meson test's exit code.
raft_meson_test() {
  local build=$1 log rc
  shift
  log=$(mktemp)
  set +e
  meson test -C "$build" --print-errorlogs "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  raft_test_summary "$log" "$rc"
  rm -f "$log"
  return "$rc"
}
