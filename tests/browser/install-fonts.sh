#!/usr/bin/env bash
# Installs a Japanese font from Debian's packages for the console screenshots
# (make screenshots): without one, headless Chromium draws Japanese as empty boxes.
# The tests do not need it. Nothing happens when the font is already there.
set -euo pipefail

if fc-list 2>/dev/null | grep -qi "IPAGothic\|Noto Sans CJK"; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "screenshots in Japanese need a CJK font; run as root:" \
         "apt-get install -y fonts-ipafont-gothic" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq fonts-ipafont-gothic >/dev/null || {
    apt-get update -qq && apt-get install -y -qq fonts-ipafont-gothic >/dev/null
}
