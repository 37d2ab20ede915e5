#!/usr/bin/env bash
# Builds every plugin of this workspace into a WebAssembly component (wasm32-wasip2), the
# recipe of ../../shared/reference/wasm-guest-toolchain.md: Debian's Rust 1.96 with its
# matching std source (build-std), lld-22 and Debian's wasi-libc. Installs those packages
# with apt when they are missing, so a fresh machine needs nothing by hand.
#
#   plugins/build.sh                 every plugin: Rust, then Python and JavaScript
#   plugins/build.sh -p test-trivial one Rust crate (any cargo build arguments pass through)
#
# Components land in plugins/target/wasm32-wasip2/release/NAME.wasm (dashes become
# underscores: test-trivial -> test_trivial.wasm), whatever CARGO_TARGET_DIR the caller set.
# Python plugins (plugins/python/NAME/app.py) become NAME_py.wasm, built with componentize-py
# 0.25.1 (installed with pip when missing); JavaScript plugins (plugins/js/NAME/plugin.js)
# become NAME_js.wasm, built with componentize-js from plugins/js/package.json (npm).
# Cargo is not run with --locked: a newly added crate gets its lock entries (commit them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

packages=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing the wasm guest toolchain: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  # Wait for a concurrent apt run instead of failing on its lock.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}"
fi

# Debian's compiler, never rustup's proxies: the std source must match rustc exactly.
# RUSTC_BOOTSTRAP unlocks build-std (set in .cargo/config.toml) on this stable compiler.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$here/target"
unset RUSTFLAGS CARGO_BUILD_TARGET RUSTUP_TOOLCHAIN
/usr/bin/cargo build --release --target wasm32-wasip2 "${@:---workspace}"

out="$CARGO_TARGET_DIR/wasm32-wasip2/release"
wit="$here/../wit"
if [ "$#" -eq 0 ]; then
  # The console script pip installs, by path: a shim manager (pyenv) may not see it yet.
  cpy="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/componentize-py"
  if [ "$("$cpy" --version 2>/dev/null)" != "componentize-py 0.25.1" ]; then
    echo "==> installing componentize-py 0.25.1"
    python3 -m pip install --quiet --disable-pip-version-check componentize-py==0.25.1
  fi
  for app in "$here"/python/*/app.py; do
    [ -f "$app" ] || continue
    dir="$(dirname "$app")"
    echo "==> python plugin $(basename "$dir")"
    (cd "$dir" && "$cpy" -d "$wit" -w data-source componentize app -o "$out/$(basename "$dir")_py.wasm")
  done
  if [ ! -d "$here/js/node_modules/@bytecodealliance/componentize-js" ]; then
    echo "==> installing componentize-js (npm ci in plugins/js)"
    (cd "$here/js" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  for plugin in "$here"/js/*/plugin.js; do
    [ -f "$plugin" ] || continue
    name="$(basename "$(dirname "$plugin")")"
    echo "==> javascript plugin $name"
    (cd "$here/js" && npx --no-install componentize-js --wit "$wit" --world-name data-source -o "$out/${name}_js.wasm" "$plugin")
  done
fi
echo "==> components in $out:"
ls -l "$out"/*.wasm
