set -u
bash .gpu/setup.sh >/dev/null 2>&1 || { echo setup failed; exit 1; }
export XDG_RUNTIME_DIR=/tmp
T0=$(date +%s)
echo "== kernels all"; .gpu/tests/kernels --test-threads 1 2>&1 | grep -E "test result|panicked|got " | head -5
echo "== kernels moe bits steps2"; OSS_WGPU_TUNE_MOE_STEPS=2 OSS_WGPU_TUNE_MOE=bits .gpu/tests/kernels --test-threads 1 moe 2>&1 | grep -E "test result|panicked|got " | head -3
for st in 1 2 3; do for v in "" bits; do
  echo "== kbench STEPS=$st MOE=$v"; OSS_WGPU_TUNE_MOE_STEPS=$st OSS_WGPU_TUNE_MOE=$v timeout 120 .gpu/bin/kbench 20b 128 2>&1 | grep -E "moe_.*_mf4w  |router_f32" | head -3
done; done
for rows in 16,8 32,4 32,16 64,8; do
  echo "== kbench ROWS=$rows bits steps1"; OSS_WGPU_TUNE_MOE=bits OSS_WGPU_TUNE_MOE_ROWS=$rows timeout 120 .gpu/bin/kbench 20b 128 2>&1 | grep -E "moe_.*_mf4w  " | head -3
done
echo "elapsed $(( $(date +%s) - T0 ))"
for v in "" bits; do
  echo "== bench MOE=$v steps1"; OSS_WGPU_TUNE_MOE=$v timeout 200 .gpu/bin/oss-wgpu bench --synthetic 20b --pp 512 --depths 0 --tg 64 --reps 2 2>&1 | grep -E "tg64" | head -3
done
echo "elapsed $(( $(date +%s) - T0 ))"
