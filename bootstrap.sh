#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine.
#
#   ./bootstrap.sh run spotify      install what broadcaster needs, then run it
#   ./bootstrap.sh test [ARGS]      install what the tests need, then run them
#   ./bootstrap.sh packages         print the Debian packages it installs
#   ./bootstrap.sh ARGS...          any other broadcaster command (status, ...)
#
# Debian packages are installed with apt-get (through sudo unless root), only
# when missing; Python packages go into .venv beside this script.
set -euo pipefail
cd "$(dirname "$0")"

RUN_PACKAGES=(snapserver snapclient pipewire pipewire-bin wireplumber pipewire-pulse util-linux
              pulseaudio-utils dbus libsoxr0 python3 python3-venv python3-pip)
TEST_PACKAGES=(dbus-daemon ffmpeg sox iproute2 chromium nodejs procps mpv mpv-mpris espeak-ng)

say() { printf 'bootstrap: %s\n' "$*" >&2; }

apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # Don't let the packaged system snapserver service grab the default ports
    # before the tests (it is started by the package on systemd machines).
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

# broadcaster itself is installed editable as a plain path entry (a .pth line
# naming this checkout): setuptools' default editable mode, for a package_dir
# mapping like ours (snapcast/ -> broadcaster._snapcast_conf), installs an
# import finder instead, which site imports at every start of the venv's
# Python (~11 ms, with pathlib and more, before `broadcaster status` even
# begins).  In a checkout the templates are read from snapcast/ itself.
# setuptools calls this mode transitional: should a setuptools taken into the
# locks drop it, the install below fails loudly (and "lenient" is the fallback).
EDITABLE_MODE=compat

# Python packages come from the committed locks (requirements.lock,
# requirements-test.lock), hash-checked, never resolved afresh: a fresh clone
# installs what CI tested, whatever was released since.  `ci/refresh-lock`
# rewrites the locks after a change to pyproject.toml's dependencies.
venv() {
    local lock=requirements.lock stamp=.venv/.installed
    [ "$1" = test ] && lock=requirements-test.lock
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv"
        python3 -m venv .venv
    fi
    local want
    want="$1 $EDITABLE_MODE $(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing $lock and broadcaster into .venv"
        local log=.venv/pip-install.log pip=(.venv/bin/python -m pip install -q --no-deps)
        # The build backend first (wheels only), so that the one source-only
        # package in the lock and broadcaster itself build with the locked
        # setuptools instead of one pip would fetch for an isolated build.
        # pip's and setuptools' chatter goes to a log, shown only if it fails.
        if ! { "${pip[@]}" --require-hashes --only-binary :all: \
                   -r <(awk '/^setuptools==/ {p = 1} p {print} p && !/\\$/ {exit}' "$lock") \
               && "${pip[@]}" --require-hashes --no-build-isolation -r "$lock" \
               && "${pip[@]}" --no-build-isolation -e . --config-settings editable_mode="$EDITABLE_MODE"
             } >"$log" 2>&1; then
            cat "$log" >&2
            say "installing Python packages failed (log: $log)"
            exit 1
        fi
        echo "$want" >"$stamp"
    fi
}

case "${1:-}" in
    test)
        shift
        apt_install "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
        venv test
        export PATH="$PWD/.venv/bin:$PATH"
        say "ruff"
        ruff check .
        ruff format --check .
        say "mypy (strict)"
        mypy
        say "import layering (cli and web over the library, no cycles)"
        lint-imports
        say "pytest"
        exec pytest "$@"
        ;;
    packages)
        # The Debian packages this script installs (ci/debian-root builds them in).
        echo "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
        ;;
    "" | -h | --help)
        sed -n '2,10p' "$0"
        exit 0
        ;;
    *)
        apt_install "${RUN_PACKAGES[@]}"
        venv run
        exec .venv/bin/broadcaster "$@"
        ;;
esac
