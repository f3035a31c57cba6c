#!/usr/bin/env bash
# Tests from a clone under a mode-0700 directory, as a user's clone in /root is: a test that
# runs the program as another user must not depend on where the checkout lives. Clones the
# committed HEAD. Usage: scripts/private-clone-test.sh [vitest files...]
# (default: the unit suite and test/e2e/crash-safety.test.ts).
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -eq 0 ]; then set -- test/unit test/e2e/crash-safety.test.ts; fi
private="$(mktemp -d)"
chmod 700 "$private"
trap 'rm -rf "$private"' EXIT
git clone -q "$src" "$private/gradpool"
cd "$private/gradpool"
# The checkout's installed packages as a real directory inside the private tree, as npm ci
# makes it: hard links copy no data (a plain copy when /tmp is another file system). Not
# vitest's cache, which it rewrites in place.
modules="$(realpath "$src/node_modules")"
cp -a --link "$modules" node_modules 2>/dev/null || { rm -rf node_modules; cp -a "$modules" node_modules; }
rm -rf node_modules/.vite node_modules/.vitest
echo "private-clone-test: $(pwd) (parent mode $(stat -c %a "$private")): vitest run $*"
node scripts/build-native.mjs   # the native kernels, as npm ci's install script builds them
npm run build --silent
npx vitest run "$@"
