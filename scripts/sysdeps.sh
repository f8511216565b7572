#!/usr/bin/env bash
# Install the Debian packages ecert needs, idempotently (CI runs as root on Debian).
# openssl: CLI for interop tests; libssl3: libcrypto used at run time;
# fonts-noto-cjk: CJK fonts for seal pictures and the renderer;
# postgresql: a throwaway server for the keystore's PostgreSQL tests;
# chromium: the headless browser the portal tests drive through Playwright (never `playwright install`).
set -euo pipefail
PKGS=(openssl libssl3 fonts-noto-cjk postgresql chromium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "sysdeps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "sysdeps: please install as root: apt-get install -y ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
