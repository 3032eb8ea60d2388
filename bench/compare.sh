#!/usr/bin/env bash
# Times qimg against the QEMU tools, whole processes side by side in one run, and prints a Markdown
# table of medians (and minimums) with the ratio of the medians (QEMU's time / qimg's time: above 1,
# qimg is faster).
#
#   bench/compare.sh [--runs N] [--images DIR] [ROW...]
#
# ROW names one of the rows below (default: all). Makes the benchmark images first if they are
# missing (bench/make-images.sh; --images DIR, else $QIMG_BENCH_IMAGES, else bench/work/images).
# Needs a built qimg (bin/build). Each row first checks that both tools print the same bytes and
# fails loudly if not; then it runs each command once to warm the page cache, then N times (default
# 5), alternating the two tools so that a noisy neighbour hurts both alike.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
images="${QIMG_BENCH_IMAGES:-$here/bench/work/images}"
selected=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --runs=*) runs="${1#*=}"; shift ;;
    --images) images="$2"; shift 2 ;;
    --images=*) images="${1#*=}"; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "compare: unknown option $1" >&2; exit 2 ;;
    *) selected+=("$1"); shift ;;
  esac
done
qimg="$here/bin/qimg"
if [ ! -f "$here/qimg-cli/target/qimg.jar" ]; then
  echo "compare: qimg is not built; run bin/build first" >&2
  exit 1
fi
"$here/bench/make-images.sh" "$images"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Wall time of one run of "$@" in milliseconds (stdout to /dev/null), without starting a process
# for the clock.
time_once() {
  local start end
  start=$EPOCHREALTIME
  "$@" >/dev/null
  end=$EPOCHREALTIME
  # EPOCHREALTIME is seconds.microseconds; integer microseconds avoid floating point in bash.
  local us=$(( (${end/./} - ${start/./}) ))
  printf '%d.%03d' $((us / 1000)) $((us % 1000))
}

median() {
  printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Fails loudly unless both commands print the same bytes. Usage: same_output LABEL -- CMD1... -- CMD2...
same_output() {
  local label="$1"; shift; shift
  local a=() b=()
  while [ "$1" != "--" ]; do a+=("$1"); shift; done
  shift
  b=("$@")
  "${a[@]}" >"$work/reference" || { echo "compare: $label: '${a[*]}' failed" >&2; exit 1; }
  "${b[@]}" >"$work/ours" || { echo "compare: $label: '${b[*]}' failed" >&2; exit 1; }
  if ! cmp -s "$work/reference" "$work/ours"; then
    echo "compare: FAILED: $label: the outputs differ; first differences (< ${a[0]##*/}, > ${b[0]##*/}):" >&2
    diff "$work/reference" "$work/ours" | head -20 >&2
    exit 1
  fi
}

# Times the two commands alternately and prints one table row.
# Usage: timed_row LABEL -- REFERENCE_CMD... -- QIMG_CMD...
timed_row() {
  local label="$1"; shift; shift
  local a=() b=()
  while [ "$1" != "--" ]; do a+=("$1"); shift; done
  shift
  b=("$@")
  # $before_each, when a row sets it, names a function run (untimed) before every run of each tool,
  # with "a" or "b": the allocating write rows give each run a fresh image that way.
  ${before_each:-:} a
  "${a[@]}" >/dev/null
  ${before_each:-:} b
  "${b[@]}" >/dev/null
  local ta=() tb=() i
  for ((i = 0; i < runs; i++)); do
    ${before_each:-:} a
    ta+=("$(time_once "${a[@]}")")
    ${before_each:-:} b
    tb+=("$(time_once "${b[@]}")")
  done
  local ma mb mina minb
  ma="$(median "${ta[@]}")"
  mb="$(median "${tb[@]}")"
  mina="$(printf '%s\n' "${ta[@]}" | sort -n | head -1)"
  minb="$(printf '%s\n' "${tb[@]}" | sort -n | head -1)"
  awk -v label="$label" -v ref="${a[0]##*/}" -v ma="$ma" -v mb="$mb" -v mina="$mina" -v minb="$minb" \
    -v runs="$runs" 'BEGIN {
      printf "| %s | %s %.0f ms (%.0f) | qimg %.0f ms (%.0f) | %.1fx | %d |\n", label, ref, ma, mina, mb, minb, ma / mb, runs
    }'
}

# One function per row; a row checks its outputs, then times. Add rows here (and to all_rows).
map_row() {
  local label="$1" image="$2"
  same_output "$label" -- qemu-img map --output=json "$image" -- "$qimg" map --output=json "$image"
  timed_row "$label" -- qemu-img map --output=json "$image" -- "$qimg" map --output=json "$image"
}

row_map-sparse-4t() {
  map_row "map --output=json, 4 TiB, 20,000 scattered clusters" "$images/sparse-4t.qcow2"
}

row_map-chain() {
  map_row "map --output=json, 3 x 1 TiB chain, 3 x 10,000 clusters" "$images/chain-top.qcow2"
}

row_map-far-4t() {
  map_row "map --output=json, 4 TiB, one cluster at each end" "$images/far-4t.qcow2"
}

# The fixed cost of a run: a map with next to nothing to map.
row_start-up() {
  local image="$work/empty.qcow2"
  qemu-img create -q -f qcow2 "$image" 1M
  map_row "start-up: map --output=json, empty 1 MiB image" "$image"
}

# Writes: each tool writes its own copy of the same fresh image (qemu-img bench is the peer, with
# its defaults: 64 requests in flight, cache=writeback, a flush on close). The "over allocated
# clusters" rows time rewrites (the untimed first run allocates); the "allocating" rows give every
# run a fresh image, so that every request allocates.
fresh_image() {
  local image="$work/bench-qemu.qcow2"
  [ "$1" = b ] && image="$work/bench-qimg.qcow2"
  rm -f "$image"
  qemu-img create -q -f qcow2 "$image" 4G
}

fresh_images() {
  fresh_image a
  fresh_image b
}

bench_row() {
  local label="$1"; shift
  fresh_images
  timed_row "$label" -- qemu-img bench -q -w "$@" "$work/bench-qemu.qcow2" -- "$qimg" bench -q -w "$@" "$work/bench-qimg.qcow2"
  qemu-img compare -q "$work/bench-qemu.qcow2" "$work/bench-qimg.qcow2" \
    || { echo "compare: FAILED: $label: the written images differ" >&2; exit 1; }
  qemu-img check -q "$work/bench-qimg.qcow2" \
    || { echo "compare: FAILED: $label: qemu-img check finds qimg's image damaged" >&2; exit 1; }
}

allocating_row() {
  local before_each=fresh_image
  bench_row "$@"
}

row_write-seq() {
  bench_row "sequential write, 1 GiB in 1 MiB requests, over allocated clusters" -c 1024 -s 1M
}

row_write-rand4k() {
  bench_row "scattered 4 KiB writes x 20,000, over allocated clusters" -c 20000 -s 4k -S 1234567
}

row_alloc-seq() {
  allocating_row "sequential write, 1 GiB in 1 MiB requests, allocating" -c 1024 -s 1M
}

row_alloc-rand4k() {
  allocating_row "scattered 4 KiB writes x 20,000, each allocating" -c 20000 -s 4k -S 1234567
}

# A dense image, made once: 1 GiB of data (qemu-io pattern writes).
dense_image() {
  local image="$images/dense-$1.qcow2"
  if [ ! -f "$image" ]; then
    qemu-img create -q -f qcow2 "$image.part" "$1"
    local gib="${1%G}" i cmds=()
    for ((i = 0; i < gib; i++)); do
      cmds+=(-c "write -P 0x5a ${i}G 1G")  # qemu-io takes at most 2 GiB a request
    done
    if qemu-io "${cmds[@]}" "$image.part" | grep -q failed; then
      echo "compare: making $image failed" >&2
      exit 1
    fi
    mv "$image.part" "$image"
  fi
  echo "$image"
}

# A convert makes a new file: before each run its output is removed (untimed), so that no run pays
# for emptying the previous run's 1 GiB, which costs 50-200 ms and more while its pages are still
# being written back (the other tool's run decides that).
convert_output=qcow2
fresh_output() {
  local tool=qemu
  [ "$1" = b ] && tool=qimg
  rm -f "$work/conv-$tool.$convert_output"
}

row_convert-qcow2() {
  local image before_each=fresh_output convert_output=qcow2
  image="$(dense_image 1G)"
  timed_row "convert -O qcow2, dense 1 GiB" -- qemu-img convert -O qcow2 "$image" "$work/conv-qemu.qcow2" \
    -- "$qimg" convert -O qcow2 "$image" "$work/conv-qimg.qcow2"
  qemu-img compare -q "$work/conv-qemu.qcow2" "$work/conv-qimg.qcow2" \
    || { echo "compare: FAILED: convert outputs differ" >&2; exit 1; }
}

# Compressed (qemu-img's default compression type, zlib): CPU-bound, several seconds per run.
row_convert-compressed() {
  local image before_each=fresh_output convert_output=qcow2
  image="$(dense_image 1G)"
  timed_row "convert -c -O qcow2 (zlib), dense 1 GiB" -- qemu-img convert -c -O qcow2 "$image" "$work/conv-qemu.qcow2" \
    -- "$qimg" convert -c -O qcow2 "$image" "$work/conv-qimg.qcow2"
  qemu-img compare -q "$work/conv-qemu.qcow2" "$work/conv-qimg.qcow2" \
    || { echo "compare: FAILED: convert -c outputs differ" >&2; exit 1; }
  qemu-img check -q "$work/conv-qimg.qcow2" \
    || { echo "compare: FAILED: qemu-img check finds qimg's compressed output damaged" >&2; exit 1; }
}

row_convert-raw() {
  local image before_each=fresh_output convert_output=raw
  image="$(dense_image 1G)"
  timed_row "convert -O raw, dense 1 GiB" -- qemu-img convert -O raw "$image" "$work/conv-qemu.raw" \
    -- "$qimg" convert -O raw "$image" "$work/conv-qimg.raw"
}

# NBD: the same image served by qemu-nbd and by qimg serve, each on its own Unix socket.
serve_both() {
  local image="$1"; shift
  qemu-nbd -r -t -k "$work/qemu.sock" -f qcow2 "$@" "$image" &
  qemu_nbd=$!
  "$qimg" serve -r -t -k "$work/qimg.sock" -f qcow2 "$@" "$image" &
  qimg_serve=$!
  local i
  for ((i = 0; i < 100; i++)); do
    [ -S "$work/qemu.sock" ] && [ -S "$work/qimg.sock" ] && return 0
    sleep 0.1
  done
  echo "compare: the NBD servers did not start" >&2
  exit 1
}

stop_both() {
  kill "$qemu_nbd" "$qimg_serve" 2>/dev/null || true
  wait "$qemu_nbd" "$qimg_serve" 2>/dev/null || true
  rm -f "$work/qemu.sock" "$work/qimg.sock"
}

row_nbdcopy() {
  local image
  image="$(dense_image 4G)"
  serve_both "$image"
  timed_row "nbdcopy ... null:, dense 4 GiB" -- nbdcopy "nbd+unix:///?socket=$work/qemu.sock" null: \
    -- nbdcopy "nbd+unix:///?socket=$work/qimg.sock" null:
  stop_both
}

row_nbd-map() {
  serve_both "$images/sparse-4t.qcow2"
  same_output "nbdinfo --map" -- nbdinfo --map "nbd+unix:///?socket=$work/qemu.sock" \
    -- nbdinfo --map "nbd+unix:///?socket=$work/qimg.sock"
  timed_row "nbdinfo --map, 4 TiB sparse" -- nbdinfo --map "nbd+unix:///?socket=$work/qemu.sock" \
    -- nbdinfo --map "nbd+unix:///?socket=$work/qimg.sock"
  stop_both
}

all_rows=(map-sparse-4t map-chain map-far-4t start-up write-seq write-rand4k alloc-seq alloc-rand4k convert-qcow2 convert-compressed convert-raw nbdcopy nbd-map)
if [ ${#selected[@]} -eq 0 ]; then
  selected=("${all_rows[@]}")
fi
for row in "${selected[@]}"; do
  if ! declare -F "row_$row" >/dev/null; then
    echo "compare: no row '$row'; rows: ${all_rows[*]}" >&2
    exit 2
  fi
done

echo "qimg $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?') vs $(qemu-img --version | head -1);" \
  "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| what | reference: median (min) | qimg: median (min) | ratio of medians | runs |"
echo "| --- | --- | --- | --- | --- |"
for row in "${selected[@]}"; do
  "row_$row"
done
