#!/usr/bin/env bash
# Makes the AOT caches that bin/qimg uses (JEP 483/514): training runs of the commands that start
# often (map in every output format, seek; convert, create, check, io, bench -w: AotTraining says
# which and why not info) over small images of every kind, recorded and assembled by the JVM into
# OUT, and three smaller ones for map, convert and bench alone (OUT-map etc., see the loop below).
# Run by the build (qimg-cli/pom.xml, package phase) as:
#   train.sh JAVA JAR OUT WORKDIR
# The JVM options must be those bin/qimg runs with, and JAR the same path, or the cache is rejected.
# Never fails the build: without qemu-img, or when the JVM cannot make the cache, it says so and
# leaves no cache, and bin/qimg then starts without one.
set -uo pipefail
if [ $# -ne 4 ]; then
  echo "usage: $0 JAVA JAR OUT WORKDIR" >&2
  exit 2
fi
java="$1" jar="$2" out="$3" work="$4"
rm -f "$out" "$out.java" "$out.config" "${out%.aot}"-*.aot "${out%.aot}"-*.aot.java
if ! command -v qemu-img >/dev/null 2>&1; then
  echo "qimg AOT training: qemu-img is missing, so no AOT cache (bin/qimg starts slower)" >&2
  exit 0
fi
# Each step checks itself: set -e does not apply inside a function whose status is tested.
make_images() {
  rm -rf "$work" && mkdir -p "$work" && cd "$work" || return 1
  # A backing chain with data, zero clusters and unallocated ranges, a raw file, and an image large
  # enough for the parallel map.
  qemu-img create -q -f raw base.raw 4M &&
    qemu-img create -q -f qcow2 -o cluster_size=65536 -b base.raw -F raw mid.qcow2 8M &&
    qemu-img create -q -f qcow2 -o cluster_size=65536 -b mid.qcow2 -F qcow2 top.qcow2 8M &&
    qemu-img create -q -f qcow2 -o cluster_size=65536 big.qcow2 64G &&
    qemu-img create -q -f qcow2 bench.qcow2 64M || return 1
  if command -v qemu-io >/dev/null 2>&1; then
    qemu-io -f raw -c 'write -q -P 1 0 64k' base.raw &&
      qemu-io -f qcow2 -c 'write -q -P 2 64k 64k' -c 'write -q -z 128k 64k' mid.qcow2 &&
      qemu-io -f qcow2 -c 'write -q -P 3 192k 128k' -c 'write -q -z 0 64k' top.qcow2 &&
      qemu-io -f qcow2 -c 'write -q -P 4 0 64k' -c 'write -q -P 5 40G 64k' big.qcow2 || return 1
  fi
}
if ! (make_images); then
  echo "qimg AOT training: could not make the training images in $work, so no AOT cache" >&2
  exit 0
fi
cd "$work"
# Training and assembly print progress on stdout and stderr: keep it out of the build log unless
# something fails.
# One cache shared by most commands (OUT), and one each for map, convert and bench (OUT with the
# command's name: qimg-map.aot), trained on that command alone: a cache loads every class of its
# training at every start, so a small one starts its command sooner (AotTraining says how much).
for workload in all map convert bench; do
  cache="$out"
  [ "$workload" = all ] || cache="${out%.aot}-$workload.aot"
  rm -f "$cache" "$cache.java"
  if "$java" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss8m -XX:AOTCacheOutput="$cache" \
      -cp "$jar" org.qimg.cli.AotTraining "$workload" top.qcow2 mid.qcow2 base.raw big.qcow2 \
      >"training-$workload.log" 2>&1 && [ -s "$cache" ]; then
    printf '%s\n' "$java" > "$cache.java"
    echo "qimg AOT training: made $cache" >&2
  else
    rm -f "$cache" "$cache.java"
    echo "qimg AOT training: the JVM made no AOT cache for $workload (see $work/training-$workload.log); bin/qimg starts slower" >&2
  fi
done
exit 0
