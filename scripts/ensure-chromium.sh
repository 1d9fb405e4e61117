#!/usr/bin/env bash
# Install headless Chromium for the report's browser test where we can (Debian/Ubuntu, as root).
# Without it the browser test skips with a message; every other test still runs.
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the report's browser test (apt-get)..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
    >/tmp/adrl-chromium-install.log 2>&1 || echo "warning: chromium install failed (see /tmp/adrl-chromium-install.log); the browser test will skip"
else
  echo "note: chromium not found; the report's browser test will skip (Debian: sudo apt-get install chromium)"
fi
exit 0
