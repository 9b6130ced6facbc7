#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/integration/test_ui.py): Playwright drives it through
# executable_path, so no browser download is needed. Installs only when /usr/bin/chromium is missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-browser: chromium is missing and this is not root: run 'apt-get install chromium' as root" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup-browser: installing Debian's chromium (apt-get)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
