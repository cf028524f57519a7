#!/usr/bin/env bash
# Installs Debian's Chromium and its chromedriver for the browser tests
# (tests/browser/), once: nothing happens when /usr/bin/chromium and
# /usr/bin/chromedriver are already there. Only the distribution's packages are
# used; no browser binary is downloaded from anywhere else.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "tests/browser needs Debian's chromium and chromium-driver packages;" \
         "run as root: apt-get update && apt-get install -y chromium chromium-driver" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version
