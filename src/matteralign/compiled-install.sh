#!/usr/bin/env bash
# compiled-install PKG==VER ...: install packages that ship only sources, compiled against the
# active environment's torch (no build isolation, so the build sees that torch), each at most
# once. `matteralign env build` puts this on PATH for post-deploy scripts: the wheels are kept
# in $MATTERALIGN_WHEELS/torch-{version}/ (beside its uv cache; uv caches no build made
# without isolation), each built under its own lock and moved in whole, all side by side.
set -euo pipefail
wheels="$MATTERALIGN_WHEELS/torch-$(python -c 'import torch; print(torch.__version__)')"
mkdir -p "$wheels"
build() {
  (flock 9
   ls "$wheels/${1/==/-}-"*.whl >/dev/null 2>&1 && exit 0
   rm -rf "$wheels/.partial-$1"
   python -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheels/.partial-$1" "$1"
   mv "$wheels/.partial-$1"/*.whl "$wheels/" && rmdir "$wheels/.partial-$1") 9>"$wheels/.$1.lock"
}
pids=()
files=()
for requirement in "$@"; do
  requirement="${requirement//-/_}"  # wheel file names spell torch-scatter torch_scatter
  build "$requirement" &
  pids+=($!)
  files+=("$wheels/${requirement/==/-}-")
done
for pid in "${pids[@]}"; do wait "$pid"; done
for prefix in "${files[@]}"; do
  uv pip install --quiet --no-deps "$prefix"*.whl
done
