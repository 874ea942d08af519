#!/usr/bin/env bash
# Set up everything webprof needs on this machine (Debian 12; Ubuntu 22.04/24.04 too).
#
# Idempotent: each step checks whether its result is already there and skips itself,
# so a second run takes a second or two. Called by `make up` and `make test`; can be
# run on its own: `sudo scripts/setup.sh`.
#
# Steps: root check, Debian packages (bcc, Go, PostgreSQL, Chromium, ...), kernel
# headers (with a fallback tree for kernels that have no packaged headers),
# debugfs/tracefs mounts, .venv from /usr/bin/python3 with bcc linked in,
# `pip install -e '.[test]'`, database migrations, Chromium check.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

VENV="$ROOT/.venv"
SYS_PYTHON=/usr/bin/python3
CACHE_DIR=/var/cache/webprof
KHEADERS="$CACHE_DIR/kheaders"
KERNEL_SOURCE_FILE="$CACHE_DIR/kernel-source"
UNAVAILABLE_FILE="$CACHE_DIR/apt-unavailable"
KREL=$(uname -r)

export DEBIAN_FRONTEND=noninteractive

ok()      { printf 'ok: %s\n' "$*"; }
doing()   { printf '%s: %s\n' "$1" "${*:2}"; }
note()    { printf 'note: %s\n' "$*"; }
warn()    { printf 'warning: %s\n' "$*" >&2; }
die()     { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- 1. root -------------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
    cat >&2 <<'EOF'
error: webprof's set-up must run as root: it installs Debian packages, mounts
       debugfs/tracefs, and webprof loads eBPF programs into the kernel.
       Run it with sudo from the repository:   sudo make up   (or: sudo make test)
EOF
    exit 1
fi

# One set-up at a time (make up and make test started together would race on apt/pip).
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/setup.lock"
flock 9

# --- distribution ----------------------------------------------------------------------
OS_ID=debian
OS_LIKE=
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    OS_ID=$(. /etc/os-release && printf '%s' "${ID:-debian}")
    # shellcheck disable=SC1091
    OS_LIKE=$(. /etc/os-release && printf '%s' "${ID_LIKE:-}")
fi
is_ubuntu() { [ "$OS_ID" = ubuntu ] || [[ " $OS_LIKE " == *" ubuntu "* ]]; }
command -v dpkg-query >/dev/null 2>&1 || die "this set-up needs a Debian or Ubuntu system (dpkg/apt)"

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
apt_has() { apt-cache show --no-all-versions "$1" >/dev/null 2>&1; }

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        doing installing "apt-get update"
        apt-get update -q || warn "apt-get update failed; trying with the package lists at hand"
        APT_UPDATED=1
    fi
}
apt_install() {
    apt-get install -y -q "$@"
}

# --- 2. Debian packages ----------------------------------------------------------------
# postgresql: `make test` runs the web tier a second time on a throwaway cluster
# (scripts/pgtest.sh); the package's own cluster is not used.
# systemtap-sdt-dev: <sys/sdt.h> for the USDT test workload; bpftool: the trace
# tests count this process's uprobe/tracepoint attachments with `bpftool perf list`.
REQUIRED_PKGS=(bpfcc-tools python3-bpfcc libbpfcc python3-venv gcc make golang-go postgresql
               systemtap-sdt-dev bpftool)
if is_ubuntu; then
    # Ubuntu's chromium is a snap; perf comes in kernel-specific linux-tools packages.
    OPTIONAL_PKGS=(chromium chromium-driver "linux-tools-$KREL" linux-tools-common)
else
    REQUIRED_PKGS+=(chromium chromium-driver)
    OPTIONAL_PKGS=(linux-perf)
fi

missing_req=()
for p in "${REQUIRED_PKGS[@]}"; do installed "$p" || missing_req+=("$p"); done
missing_opt=()
known_unavailable=()
for p in "${OPTIONAL_PKGS[@]}"; do
    installed "$p" && continue
    if [ -f "$UNAVAILABLE_FILE" ] && grep -qxF "$p" "$UNAVAILABLE_FILE"; then
        known_unavailable+=("$p")
    else
        missing_opt+=("$p")
    fi
done

if [ ${#missing_req[@]} -eq 0 ] && [ ${#missing_opt[@]} -eq 0 ]; then
    present=("${REQUIRED_PKGS[@]}")
    for p in "${OPTIONAL_PKGS[@]}"; do installed "$p" && present+=("$p"); done
    ok "packages: ${present[*]}"
else
    apt_update_once
    to_install=("${missing_req[@]}")
    for p in "${missing_opt[@]}"; do
        if apt_has "$p"; then
            to_install+=("$p")
        else
            warn "optional package $p is not available here (perf-based benchmarks / e2e tests may be skipped)"
            printf '%s\n' "$p" >>"$UNAVAILABLE_FILE"
        fi
    done
    if [ ${#to_install[@]} -gt 0 ]; then
        doing installing "packages: ${to_install[*]}"
        apt_install "${to_install[@]}"
    fi
    ok "packages installed"
fi
for p in "${known_unavailable[@]}"; do
    warn "optional package $p is not available (checked earlier; delete $UNAVAILABLE_FILE to re-check)"
done

# --- 3. kernel headers -----------------------------------------------------------------
# bcc compiles its C programs against kernel headers at load time. Use the running
# kernel's own headers when they exist or are packaged; otherwise the distribution's
# generic headers, merged into one tree that bcc gets through BCC_KERNEL_SOURCE.
# The chosen tree is written to $KERNEL_SOURCE_FILE (empty line: the kernel's own).
write_kernel_source() {
    local want="$1"
    if [ ! -f "$KERNEL_SOURCE_FILE" ] || [ "$(cat "$KERNEL_SOURCE_FILE")" != "$want" ]; then
        printf '%s\n' "$want" >"$KERNEL_SOURCE_FILE"
    fi
}

own_headers() { [ -e "/lib/modules/$KREL/build/include/linux/kconfig.h" ]; }

if is_ubuntu; then
    GENERIC_HEADERS_PKG=linux-headers-generic
    FLAVOUR=generic
else
    FLAVOUR=$(dpkg --print-architecture)
    GENERIC_HEADERS_PKG="linux-headers-$FLAVOUR"
fi

# Prints "H C": the newest flavour headers dir and its common (arch-independent) dir.
generic_headers_dirs() {
    local h c
    h=$(find /usr/src -maxdepth 1 -type d -name "linux-headers-*-$FLAVOUR" 2>/dev/null \
        | grep -E "/linux-headers-[0-9][0-9.]*-[0-9]+-$FLAVOUR\$" | sort -V | tail -n 1 || true)
    [ -n "$h" ] || return 1
    if is_ubuntu; then c=${h%-"$FLAVOUR"}; else c=${h%-"$FLAVOUR"}-common; fi
    [ -d "$c" ] || c=
    printf '%s %s\n' "$h" "$c"
}

# What the stamp of a current fallback tree must say.
fallback_stamp() {
    local h c
    read -r h c < <(generic_headers_dirs) || return 1
    printf 'kernel=%s\n' "$KREL"
    printf 'headers=%s %s\n' "$h" "$(pkg_version "$(basename "$h")")"
    if [ -n "$c" ]; then printf 'common=%s %s\n' "$c" "$(pkg_version "$(basename "$c")")"; fi
}

fallback_note() {
    local h
    h=$(sed -n 's/^headers=\([^ ]*\) \(.*\)$/\1 (\2)/p' "$KHEADERS/.webprof-stamp")
    note "no headers packaged for kernel $KREL; using generic headers ${h#/usr/src/} at $KHEADERS (BCC_KERNEL_SOURCE)"
}

fallback_current() {
    local want
    [ -f "$KHEADERS/.webprof-stamp" ] && [ -e "$KHEADERS/include/linux/kconfig.h" ] || return 1
    installed "$GENERIC_HEADERS_PKG" || return 1
    want=$(fallback_stamp) || return 1
    [ "$(cat "$KHEADERS/.webprof-stamp")" = "$want" ]
}

build_fallback() {
    local h c tmp stamp
    read -r h c < <(generic_headers_dirs) || die "installed $GENERIC_HEADERS_PKG but found no /usr/src/linux-headers-*-$FLAVOUR"
    stamp=$(fallback_stamp)
    doing building "merged header tree $KHEADERS from ${h#/usr/src/}${c:+ + ${c#/usr/src/}}"
    tmp="$KHEADERS.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if [ -n "$c" ]; then cp -rs "$c/." "$tmp/"; fi
    cp -rsf "$h/." "$tmp/"
    printf '%s\n' "$stamp" >"$tmp/.webprof-stamp"
    # Swap, so that a collector running meanwhile never sees a half-built tree.
    if [ -e "$KHEADERS" ]; then mv "$KHEADERS" "$KHEADERS.old.$$"; fi
    mv "$tmp" "$KHEADERS"
    rm -rf "$KHEADERS.old.$$"
    [ -e "$KHEADERS/include/linux/kconfig.h" ] || die "merged header tree $KHEADERS has no include/linux/kconfig.h"
}

if own_headers; then
    ok "kernel headers for $KREL"
    write_kernel_source ""
elif fallback_current; then
    # Built earlier for this very kernel, after finding no linux-headers-$KREL package.
    fallback_note
    write_kernel_source "$KHEADERS"
else
    apt_update_once
    if apt_has "linux-headers-$KREL"; then
        doing installing "linux-headers-$KREL"
        apt_install "linux-headers-$KREL"
        own_headers || die "linux-headers-$KREL installed, but /lib/modules/$KREL/build/include/linux/kconfig.h is missing"
        ok "kernel headers for $KREL"
        write_kernel_source ""
    else
        if ! installed "$GENERIC_HEADERS_PKG"; then
            doing installing "$GENERIC_HEADERS_PKG (no linux-headers-$KREL package exists)"
            apt_install "$GENERIC_HEADERS_PKG"
        fi
        build_fallback
        fallback_note
        write_kernel_source "$KHEADERS"
    fi
fi

# --- 4. debugfs and tracefs ------------------------------------------------------------
for spec in "debugfs /sys/kernel/debug" "tracefs /sys/kernel/tracing"; do
    read -r fs dir <<<"$spec"
    if mountpoint -q "$dir"; then
        ok "$fs mounted at $dir"
    else
        doing mounting "$fs at $dir"
        mount -t "$fs" nodev "$dir" || warn "could not mount $fs at $dir; eBPF tracepoints will not work"
    fi
done

# --- 5. virtual environment with bcc linked in ------------------------------------------
[ -x "$SYS_PYTHON" ] || die "$SYS_PYTHON is missing (python3-venv should have brought it)"
SYS_PYTHON_REAL=$(readlink -f "$SYS_PYTHON")

venv_ok() {
    [ -f "$VENV/pyvenv.cfg" ] && [ -x "$VENV/bin/python" ] \
        && grep -qxF "executable = $SYS_PYTHON_REAL" "$VENV/pyvenv.cfg"
}

if venv_ok; then
    ok "virtual environment .venv ($SYS_PYTHON_REAL)"
else
    if [ -e "$VENV" ]; then
        [ -f "$VENV/pyvenv.cfg" ] || die "$VENV exists but is not a virtual environment; move it away"
        doing installing "virtual environment .venv (recreating: it was not made from $SYS_PYTHON)"
        rm -rf "$VENV"
    else
        doing installing "virtual environment .venv from $SYS_PYTHON ($("$SYS_PYTHON" -V 2>&1))"
    fi
    "$SYS_PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
fi

# bcc is Debian's python3-bpfcc (PyPI's "bcc" is an unrelated package). Link only the
# bcc package into the venv: .venv/bcc-link/bcc -> dist-packages/bcc, named by a .pth.
SITE_PACKAGES=$(compgen -G "$VENV/lib/python3*/site-packages" | head -n 1 || true)
[ -n "$SITE_PACKAGES" ] || die "no site-packages directory in $VENV"
PTH="$SITE_PACKAGES/webprof-bcc.pth"
LINK_DIR="$VENV/bcc-link"
if [ -L "$LINK_DIR/bcc" ] && [ -f "$LINK_DIR/bcc/__init__.py" ] \
    && [ -f "$PTH" ] && [ "$(cat "$PTH")" = "$LINK_DIR" ]; then
    bcc_dir=$(readlink "$LINK_DIR/bcc")
else
    bcc_dir=$("$SYS_PYTHON" -c 'import bcc,os;print(os.path.dirname(bcc.__file__))' 2>/dev/null \
        || echo /usr/lib/python3/dist-packages/bcc)
    [ -f "$bcc_dir/__init__.py" ] || die "Debian's bcc module not found at $bcc_dir (is python3-bpfcc installed?)"
    doing installing "bcc link $LINK_DIR/bcc -> $bcc_dir"
    rm -rf "$LINK_DIR"
    mkdir -p "$LINK_DIR"
    ln -s "$bcc_dir" "$LINK_DIR/bcc"
    printf '%s\n' "$LINK_DIR" >"$PTH"
fi
if ! err=$("$VENV/bin/python" -c 'import bcc' 2>&1); then
    printf '%s\n' "$err" >&2
    die ".venv/bin/python cannot import bcc (linked to $bcc_dir)"
fi
ok "bcc importable in .venv (-> $bcc_dir)"

# --- 6. the project itself ----------------------------------------------------------------
PYPROJECT_SHA=$(sha256sum pyproject.toml | cut -d' ' -f1)
STAMP="$VENV/.installed-$PYPROJECT_SHA"
if [ -f "$STAMP" ] && [ -x "$VENV/bin/webprof" ]; then
    ok "project installed in .venv (pyproject.toml unchanged)"
else
    doing installing "project into .venv: pip install -e '.[test]'"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    rm -f "$VENV"/.installed-*
    touch "$STAMP"
fi

# --- 7. database migrations --------------------------------------------------------------
if [ -f manage.py ]; then
    "$VENV/bin/python" manage.py migrate --noinput -v 0
    ok "database migrated"
else
    warn "manage.py not found; skipping database migrations"
fi

# --- 8. Chromium (end-to-end tests) --------------------------------------------------------
if [ -n "${WEBPROF_CHROMIUM:-}" ]; then
    if [ -x "$WEBPROF_CHROMIUM" ]; then
        ok "chromium: $WEBPROF_CHROMIUM (WEBPROF_CHROMIUM)"
    else
        warn "WEBPROF_CHROMIUM=$WEBPROF_CHROMIUM is not an executable file"
    fi
elif [ -x /usr/bin/chromium ]; then
    ok "chromium: /usr/bin/chromium"
else
    warn "no /usr/bin/chromium: end-to-end tests need Chromium; install it or set WEBPROF_CHROMIUM=/path/to/chromium"
fi
