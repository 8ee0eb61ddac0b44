#!/usr/bin/env bash
# Copy Fashion-MNIST's four IDX files into data/FashionMNIST/raw/, gunzipped: the folder that
# ldae_lite.data looks in first (ROOT/FashionMNIST/raw, ROOT = $LDAE_DATA or <repo>/data), so the data
# travels with a copy of the working tree to a machine without network or the Debian package.
#
#   scripts/stage_data.sh                 # from /usr/share/datasets/fashion-mnist (dataset-fashion-mnist)
#   scripts/stage_data.sh /some/folder    # from any folder holding the four files, plain or .gz
#   KEEP_GZ=1 scripts/stage_data.sh       # copy the .gz files as they are (30 MB instead of 52 MiB)
#
# data/ is git-ignored (except data/README.md): to send the files along, name data/FashionMNIST in the
# list of ignored paths your copy tool carries (scripts/README.md). Existing files are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-${FMNIST_SRC:-/usr/share/datasets/fashion-mnist}}
DEST=${LDAE_DATA:-data}/FashionMNIST/raw
FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
mkdir -p "$DEST"
for f in $FILES; do
    if [ -s "$DEST/$f" ] || { [ "${KEEP_GZ:-0}" = 1 ] && [ -s "$DEST/$f.gz" ]; }; then
        echo "stage_data: $DEST/$f present"
    elif [ -s "$SRC/$f.gz" ] && [ "${KEEP_GZ:-0}" = 1 ]; then
        cp "$SRC/$f.gz" "$DEST/$f.gz.tmp" && mv "$DEST/$f.gz.tmp" "$DEST/$f.gz"
        echo "stage_data: $SRC/$f.gz -> $DEST/$f.gz"
    elif [ -s "$SRC/$f.gz" ]; then
        gunzip -c "$SRC/$f.gz" > "$DEST/$f.tmp" && mv "$DEST/$f.tmp" "$DEST/$f"  # no half-written file
        echo "stage_data: $SRC/$f.gz -> $DEST/$f (gunzipped)"
    elif [ -s "$SRC/$f" ]; then
        cp "$SRC/$f" "$DEST/$f.tmp" && mv "$DEST/$f.tmp" "$DEST/$f"
        echo "stage_data: $SRC/$f -> $DEST/$f"
    else
        echo "stage_data: ERROR: neither $SRC/$f.gz nor $SRC/$f exists." >&2
        echo "  Install the Debian package (sudo apt-get install dataset-fashion-mnist) or pass a folder" >&2
        echo "  holding the four Fashion-MNIST IDX files: scripts/stage_data.sh /path/to/folder" >&2
        exit 1
    fi
done
du -sh "$DEST"
