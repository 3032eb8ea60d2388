#!/usr/bin/env bash
# Makes the benchmark images in DIR (created if needed), reproducibly:
#   sparse-4t.qcow2            4 TiB, 64 KiB clusters, 20,000 allocated clusters at scattered offsets
#   chain-base.qcow2           1 TiB, 10,000 scattered clusters
#   chain-mid.qcow2            1 TiB over chain-base, 10,000 scattered clusters of its own
#   chain-top.qcow2            1 TiB over chain-mid, 10,000 scattered clusters of its own
#   far-4t.qcow2               4 TiB with one cluster at each end: the next data is terabytes away
# The offsets come from a fixed-seed generator (MINSTD, exact in any awk), so every run makes the same
# guest layout. All writes of one image go to a single qemu-io process through its standard input,
# which takes seconds; one qemu-io per write would take minutes.
# Makes only what is missing: each set that is complete leaves a stamp, and DIR/.images-v2 says that
# all are there (the benchmarks check it). Needs qemu-img and qemu-io, and about 4 GiB in DIR.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir="$1"
# Bump (here and in BenchImages.STAMP) when the set changes.
all_done="$dir/.images-v2"
if [ -f "$all_done" ]; then
  exit 0
fi
for tool in qemu-img qemu-io; do
  command -v "$tool" >/dev/null || { echo "make-images: $tool is missing (apt-get install qemu-utils)" >&2; exit 1; }
done
mkdir -p "$dir"

cluster=65536
tib=$((1 << 40))

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

# Runs "make_NAME" unless DIR/.NAME-done says it ran to the end before.
make_set() {
  local name="$1"
  if [ -f "$dir/.$name-done" ]; then
    return
  fi
  echo "make-images: making $name in $dir" >&2
  "make_$name"
  touch "$dir/.$name-done"
}

make_sparse() {
  qemu-img create -q -f qcow2 -o cluster_size=$cluster "$dir/sparse-4t.qcow2" $((4 * tib))
  fill "$dir/sparse-4t.qcow2" 20250101 20000 $((4 * tib))
  qemu-img check -q "$dir/sparse-4t.qcow2"
}

make_chain() {
  qemu-img create -q -f qcow2 -o cluster_size=$cluster "$dir/chain-base.qcow2" $tib
  fill "$dir/chain-base.qcow2" 1111 10000 $tib
  qemu-img create -q -f qcow2 -o cluster_size=$cluster -b chain-base.qcow2 -F qcow2 "$dir/chain-mid.qcow2" $tib
  fill "$dir/chain-mid.qcow2" 2222 10000 $tib
  qemu-img create -q -f qcow2 -o cluster_size=$cluster -b chain-mid.qcow2 -F qcow2 "$dir/chain-top.qcow2" $tib
  fill "$dir/chain-top.qcow2" 3333 10000 $tib
  for layer in base mid top; do
    qemu-img check -q "$dir/chain-$layer.qcow2"
  done
}

make_far() {
  qemu-img create -q -f qcow2 -o cluster_size=$cluster "$dir/far-4t.qcow2" $((4 * tib))
  qemu-io -f qcow2 -c "write -q -P 1 0 $cluster" -c "write -q -P 2 $((4 * tib - cluster)) $cluster" \
    "$dir/far-4t.qcow2" >/dev/null
}

make_set sparse
make_set chain
make_set far
touch "$all_done"
echo "make-images: done" >&2
