#!/usr/bin/env bash
# The doc test's `solc` for forge: native solc's command line, answered by npm's solcjs.
# forge wants a native solc and downloads one from binaries.soliditylang.org, which the
# test machine cannot reach and no package registry here serves; the doc test points
# foundry's `solc` setting at this file (FOUNDRY_SOLC, with FOUNDRY_OFFLINE=true). It speaks
# exactly what foundry-compilers sends (`solc --version`, then
# `solc [--allow-paths A,B] [--include-path P]… [--base-path B] --standard-json` with the
# input on stdin) and refuses anything else, so a change in forge fails the test loudly.
set -euo pipefail
solcjs=${SOLCJS:-solcjs}
if [ "$#" -eq 1 ] && [ "$1" = --version ]; then
  # foundry-compilers reads "Version: X.Y.Z+commit.H…"; solcjs says "X.Y.Z+commit.H.Emscripten.clang".
  v=$("$solcjs" --version)
  printf 'solc, the solidity compiler commandline interface\nVersion: %s\n' "${v%%.Emscripten*}.Linux.g++"
  exit 0
fi
args=()
json=no
while [ "$#" -gt 0 ]; do
  case "$1" in
    # solcjs has no --allow-paths; its import callback resolves imports against the base
    # and include paths forwarded below (this test's sources import nothing).
    --allow-paths) shift 2 ;;
    --base-path | --include-path) args+=("$1" "$2"); shift 2 ;;
    --standard-json) json=yes; shift ;;
    *) echo "solc shim: unsupported argument $1" >&2; exit 2 ;;
  esac
done
[ "$json" = yes ] || { echo "solc shim: only --standard-json is supported" >&2; exit 2; }
# solcjs prints a note (">>> Cannot retry compilation with SMT …") on stdout before the JSON.
"$solcjs" --standard-json "${args[@]}" | sed '/^>>> /d'
