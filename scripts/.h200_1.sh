set -x
B=.gpu/bin/oss-wgpu
$B info 2>&1 | head -8
tar -xJf .gpu/tests.tar.xz -C .gpu
RUST_LOG=info timeout 120 .gpu/tests/prefill --test-threads 1 2>&1 | grep -v "^$" | tail -40
timeout 60 .gpu/tests/shaders --test-threads 1 2>&1 | tail -3
RUST_LOG=info timeout 150 $B bench --synthetic 20b --pp 512,2048 --depths 0 --tg 16 --reps 2 2>&1 | tail -45
OSS_WGPU_COOP=off timeout 150 $B bench --synthetic 20b --pp 512,2048 --depths 0 --tg 16 --reps 2 2>&1 | grep -E "pp|tok/s" | head
