# System packages for building and testing streams; sourced by scripts/demo and scripts/test.
#
#   build-essential, cmake, pkg-config, zlib1g-dev  librdkafka / RocksDB C and C++ builds
#   libclang-dev                                    rocksdb bindgen (bindgen-runtime)
#   libssl-dev                                      librdkafka's TLS and SASL (rdkafka `ssl`)
# `ensure_packages [EXTRA...]` installs, with apt-get, those of them (and of EXTRA) that
# `dpkg -s` says are missing, as root or through `sudo -n`.
BUILD_PACKAGES=(build-essential cmake pkg-config zlib1g-dev libclang-dev libssl-dev)

ensure_packages() {
    local missing=() pkg
    for pkg in "${BUILD_PACKAGES[@]}" "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "system packages present: ${BUILD_PACKAGES[*]} $*"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || {
        echo "error: missing packages (${missing[*]}) and no apt-get to install them" >&2
        return 1
    }
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "error: need root (or sudo) to install: ${missing[*]}" >&2
            return 1
        }
        sudo=(sudo -n)
    fi
    echo "installing system packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Build outputs go to one cache outside the clone, shared by scripts/demo and scripts/test, so
# that the RocksDB and librdkafka builds are compiled once per machine. Nothing depends on it: a
# fresh machine builds from scratch into it. Set CARGO_TARGET_DIR to choose another place.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/streams/target}"
