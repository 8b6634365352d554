#!/usr/bin/env bash
# Install everything bench/run needs on a fresh Debian machine. Run as root; idempotent
# (a second run checks and does nothing it does not have to).
#
#   wrk                 HTTP load generator (apt)
#   smtp-sink           Postfix's sink, extracted from the .deb into bench/.work/postfix
#                       (no Postfix daemon is installed or started)
#   MariaDB             server (apt), started if it is not running, with the bench's own
#                       database and user (smtphub_bench / bench, on 127.0.0.1 only)
#   peer virtualenv     Django + django-post_office from PyPI in bench/.work/po-venv
#   tools virtualenv    py-spy + pyinstrument in bench/.work/tools (profiling only)
#
# Environment: PYTHON (default python3) builds the virtualenvs; BENCH_SKIP_MARIADB=1 skips
# MariaDB and BENCH_SKIP_VENVS=1 the two virtualenvs (the test suite's smoke run of the hub
# part needs neither; bin/test sets both).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$BENCH_DIR/.work"
PYTHON="${PYTHON:-python3}"
mkdir -p "$WORK"

log() { printf '[bench/setup] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        log "not root and no sudo: apt steps will fail if anything is missing"; fi
fi

apt_updated=0
apt_install() {
    # Install only the packages that are missing; `apt-get update` once, and only if needed.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ $apt_updated -eq 0 ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    log "apt-get install ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- wrk ---------------------------------------------------------------------------------
apt_install wrk

# --- smtp-sink (from the postfix .deb, never installed as a package) -----------------------
SINK="$WORK/postfix/usr/sbin/smtp-sink"
if [ ! -x "$SINK" ]; then
    if [ $apt_updated -eq 0 ]; then $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq; apt_updated=1; fi
    tmp="$(mktemp -d)"
    chmod 755 "$tmp"  # apt's download sandbox user must be able to write here
    log "apt-get download postfix (extracting smtp-sink only)"
    (cd "$tmp" && apt-get download postfix >/dev/null 2>&1 || apt-get download postfix)
    rm -rf "$WORK/postfix"
    dpkg -x "$tmp"/postfix_*.deb "$WORK/postfix"
    rm -rf "$tmp"
fi
# smtp-sink needs Postfix's own libraries (shipped in the same .deb) and a few system ones.
if LD_LIBRARY_PATH="$WORK/postfix/usr/lib/postfix" ldd "$SINK" "$WORK"/postfix/usr/lib/postfix/*.so \
        | grep -q "not found"; then
    apt_install libdb5.3 libicu72 libnsl2 libssl3
fi
LD_LIBRARY_PATH="$WORK/postfix/usr/lib/postfix" ldd "$SINK" | grep -q "not found" && {
    log "smtp-sink still misses libraries:"; LD_LIBRARY_PATH="$WORK/postfix/usr/lib/postfix" ldd "$SINK"; exit 1; }

# --- MariaDB -----------------------------------------------------------------------------
if [ "${BENCH_SKIP_MARIADB:-0}" != 1 ]; then
    apt_install mariadb-server mariadb-client
    if ! mariadb-admin ping >/dev/null 2>&1; then
        log "starting MariaDB"
        if ! $SUDO service mariadb start >/dev/null 2>&1; then
            # No init system (containers): run the server directly.
            $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld
            ($SUDO mysqld_safe >/dev/null 2>&1 &)
        fi
        for _ in $(seq 1 60); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.5; done
        mariadb-admin ping >/dev/null 2>&1 || { log "MariaDB did not start"; exit 1; }
    fi
    # The bench drops and re-creates its own database on every run; it touches no other.
    $SUDO mariadb <<'SQL'
CREATE DATABASE IF NOT EXISTS smtphub_bench CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'smtphub_bench'@'127.0.0.1' IDENTIFIED BY 'bench';
CREATE USER IF NOT EXISTS 'smtphub_bench'@'localhost' IDENTIFIED BY 'bench';
GRANT ALL PRIVILEGES ON smtphub_bench.* TO 'smtphub_bench'@'127.0.0.1';
GRANT ALL PRIVILEGES ON smtphub_bench.* TO 'smtphub_bench'@'localhost';
FLUSH PRIVILEGES;
SQL
fi

# --- virtualenvs -------------------------------------------------------------------------
make_venv() {  # make_venv DIR REQUIREMENTS-FILE
    local dir="$1" req="$2" stamp="$1/.installed"
    if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then return 0; fi
    log "virtualenv $dir"
    [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
}
if [ "${BENCH_SKIP_VENVS:-0}" != 1 ]; then
    make_venv "$WORK/po-venv" "$BENCH_DIR/requirements-peer.txt"
    make_venv "$WORK/tools" "$BENCH_DIR/requirements-tools.txt"
fi

log "ready: wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), smtp-sink in $WORK/postfix"
