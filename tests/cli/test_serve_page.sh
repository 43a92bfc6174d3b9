#!/usr/bin/env bash
# serve's page in a real headless browser: Debian's Chromium driven by playwright-core from npm
# (tests/cli/page_test.mjs). Skipped (exit 77) without node or chromium, or without
# playwright-core when npm cannot install it; .ci/install-deps.sh installs all three. The model
# is a small one trained here, or TEXTSCALE_SERVE_CHECKPOINT; with TEXTSCALE_SERVE_SCREENSHOT the
# screenshot of the answer is copied there (results/serve-page.png comes from an AG News model).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"
DATA=${TEXTSCALE_DATA:-$TEXTSCALE_SOURCE_DIR/../shared/data}
chromium=${TEXTSCALE_CHROMIUM:-/usr/bin/chromium}
node_dir=${TEXTSCALE_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/textscale/node}
package=$TEXTSCALE_SOURCE_DIR/tests/cli/package.json
if ! command -v node > /dev/null; then
  echo "SKIP: no node (apt-get install nodejs, or run .ci/install-deps.sh)"
  exit 77
fi
if [ ! -x "$chromium" ]; then
  echo "SKIP: no $chromium (apt-get install chromium, or run .ci/install-deps.sh)"
  exit 77
fi
if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ]; then
  version=$(node -p "require('$package').devDependencies['playwright-core']")
  if ! command -v npm > /dev/null || ! npm install --prefix "$node_dir" --no-save --no-audit --no-fund \
    --loglevel=error "playwright-core@$version" > /dev/null 2>&1; then
    echo "SKIP: no playwright-core in $node_dir, and npm could not install it (run .ci/install-deps.sh)"
    exit 77
  fi
fi
cd "$WORK"
export OMP_NUM_THREADS=2
checkpoint=${TEXTSCALE_SERVE_CHECKPOINT:-}
if [ -z "$checkpoint" ]; then
  tiny_checkpoint "$DATA"
  checkpoint=model.h5
fi
start_server page --checkpoint "$checkpoint" || { finish; exit; }
text="Roger Federer beat Andy Roddick in straight sets to win his second Wimbledon title on Sunday."
node "$TEXTSCALE_SOURCE_DIR/tests/cli/page_test.mjs" "$URL" page.png "$node_dir" "$chromium" "$text" > node.out 2>&1 ||
  fail "the page in Chromium: $(cat node.out)"
cat node.out
[ -s page.png ] || fail "no screenshot"
if [ -n "${TEXTSCALE_SERVE_SCREENSHOT:-}" ]; then cp page.png "$TEXTSCALE_SERVE_SCREENSHOT"; fi
stop_server
finish
