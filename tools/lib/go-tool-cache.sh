# Shared by the scripts that build pinned Go programs for the tests (tools/*/build.sh): a cache
# directory outside the repository keyed by the files the build depends on, a lock so concurrent
# runs (several test files starting at once) wait for one build instead of racing to write the same
# files, and Go on the PATH. Source it; it defines functions only.
#
# tools/cluster/build.sh predates this file and carries the same logic inline: its cache key hashes
# the script itself, so moving it here would force a rebuild of the cluster binaries (about 12
# minutes on 2 cores). Move it the next time its pins change and it rebuilds anyway.

# go_tool_cache_root NAME ENV_OVERRIDE: the cache folder of one tool set, e.g.
# ~/.cache/vaultpam-connector-operator/ecosystem, or the override when that variable is set.
go_tool_cache_root() {
  local name="$1" override="${2:-}"
  if [[ -n "$override" ]]; then
    echo "$override"
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/vaultpam-connector-operator/$name"
  fi
}

# go_tool_key FILE...: 16 hex digits of the SHA-256 of the files' contents and names, in order.
go_tool_key() {
  local file
  for file in "$@"; do
    printf '%s\0' "$file"
    cat "$file"
  done | sha256sum | cut -c1-16
}

# go_tool_module_version GO_MOD MODULE: the version go.mod requires of MODULE (direct or indirect).
go_tool_module_version() {
  awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1"
}

# go_tool_complete DIR BINARY...: whether every binary is built (present and executable) in DIR.
go_tool_complete() {
  local dir="$1" b
  shift
  for b in "$@"; do [[ -x "$dir/$b" ]] || return 1; done
}

# go_tool_lock DIR LOG_FUNCTION: holds DIR.lock on file descriptor 9 until the script exits; when
# another build holds it, says so through LOG_FUNCTION and waits.
go_tool_lock() {
  local dir="$1" log="$2"
  mkdir -p "$dir"
  exec 9>"$dir.lock"
  if ! flock -n 9; then
    "$log" "another build of $dir is running; waiting for it"
    flock 9
  fi
}

# go_tool_ensure_go: puts /usr/local/go/bin on the PATH when go is not there yet (some machines
# install Go outside the PATH); fails with a clear message when there is no Go at all.
go_tool_ensure_go() {
  if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  command -v go >/dev/null 2>&1 || {
    echo "Go is required to build the test tools (see tools/*/build.sh)" >&2
    return 1
  }
}

# go_tool_build OUT_DIR BINARY PACKAGE [GO BUILD FLAGS...]: builds one static binary into OUT_DIR,
# through a .partial file so an interrupted build never leaves a binary that looks complete.
go_tool_build() {
  local out="$1" binary="$2" package="$3"
  shift 3
  CGO_ENABLED=0 go build -trimpath "$@" -o "$out/$binary.partial" "$package"
  mv "$out/$binary.partial" "$out/$binary"
}
