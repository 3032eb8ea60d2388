#!/usr/bin/env bash
# Makes the benchmark images in DIR (created if needed), reproducibly:
#   sparse-4t.qcow2            4 TiB, 64 KiB clusters, 20,000 allocated clusters at scattered offsets
#   chain-base.qcow2           1 TiB, 10,000 scattered clusters
#   chain-mid.qcow2            1 TiB over chain-base, 10,000 scattered clusters of its own
#   chain-top.qcow2            1 TiB over chain-mid, 10,000 scattered clusters of its own
# The offsets come from a fixed-seed generator (MINSTD, exact in any awk), so every run makes the same
# guest layout. All writes of one image go to a single qemu-io process through its standard input,
# which takes seconds; one qemu-io per write would take minutes.
# Does nothing when DIR already holds a complete set made by this version of the script.
# Needs qemu-img and qemu-io; about 4 GiB of free space in DIR.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir="$1"
# Bump when the layout changes, so older sets are made again.
version=1
stamp="$dir/.images-v$version"
if [ -f "$stamp" ]; then
  exit 0
fi
for tool in qemu-img qemu-io; do
  command -v "$tool" >/dev/null || { echo "make-images: $tool is missing (apt-get install qemu-utils)" >&2; exit 1; }
done
mkdir -p "$dir"
rm -f "$dir"/.images-v* "$dir"/sparse-4t.qcow2 "$dir"/chain-*.qcow2

cluster=65536

# Prints qemu-io "write" commands: COUNT distinct clusters among the first CLUSTERS of the image,
# in the order the generator picks them, each filled with a non-zero byte pattern.
writes() {
  local seed="$1" count="$2" clusters="$3"
  awk -v seed="$seed" -v count="$count" -v clusters="$clusters" -v cluster="$cluster" 'BEGIN {
    x = seed
    made = 0
    while (made < count) {
      x = (x * 48271) % 2147483647
      # The high bits of MINSTD are the better ones: scale rather than take a remainder.
      c = int(x / 2147483647 * clusters)
      if (c in used) continue
      used[c] = 1
      made++
      # %.0f, not %d: mawk clamps %d to 32 bits; doubles hold these integers exactly.
      printf "write -q -P %d %.0f %d\n", made % 255 + 1, c * cluster, cluster
    }
  }'
}

# Writes COUNT scattered clusters into IMAGE (SIZE bytes) in one qemu-io run.
fill() {
  local image="$1" seed="$2" count="$3" size="$4"
  writes "$seed" "$count" $((size / cluster)) | qemu-io -f qcow2 "$image" >/dev/null
}

tib=$((1 << 40))
echo "make-images: making sparse-4t.qcow2 in $dir" >&2
qemu-img create -q -f qcow2 -o cluster_size=$cluster "$dir/sparse-4t.qcow2" $((4 * tib))
fill "$dir/sparse-4t.qcow2" 20250101 20000 $((4 * tib))

echo "make-images: making chain-{base,mid,top}.qcow2 in $dir" >&2
qemu-img create -q -f qcow2 -o cluster_size=$cluster "$dir/chain-base.qcow2" $tib
fill "$dir/chain-base.qcow2" 1111 10000 $tib
qemu-img create -q -f qcow2 -o cluster_size=$cluster -b chain-base.qcow2 -F qcow2 "$dir/chain-mid.qcow2" $tib
fill "$dir/chain-mid.qcow2" 2222 10000 $tib
qemu-img create -q -f qcow2 -o cluster_size=$cluster -b chain-mid.qcow2 -F qcow2 "$dir/chain-top.qcow2" $tib
fill "$dir/chain-top.qcow2" 3333 10000 $tib

for image in sparse-4t chain-base chain-mid chain-top; do
  qemu-img check -q "$dir/$image.qcow2"
done
touch "$stamp"
echo "make-images: done" >&2
