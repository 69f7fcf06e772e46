#!/usr/bin/env bash
# Installs Debian's chromium for the report's browser test, when it is missing and we may (root + apt).
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "make: installing Debian's chromium for the report test (apt-get)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "make: could not install chromium; the browser test will be skipped and say why"
else
  echo "make: chromium is missing and this is not root; the browser test will be skipped and say why"
fi
exit 0
