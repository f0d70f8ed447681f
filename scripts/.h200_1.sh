set -u
bash .gpu/setup.sh >/dev/null 2>&1 || { echo setup failed; exit 1; }
export XDG_RUNTIME_DIR=/tmp
T0=$(date +%s)
echo "== kernels moe default"; .gpu/tests/kernels --test-threads 1 moe 2>&1 | grep -E "test result|panicked|got " | head -3
echo "== kernels moe bits"; OSS_WGPU_TUNE_MOE=bits .gpu/tests/kernels --test-threads 1 moe 2>&1 | grep -E "test result|panicked|got " | head -3
for v in "" bits global bits,global; do
  echo "== kbench MOE=$v"; OSS_WGPU_TUNE_MOE=$v timeout 120 .gpu/bin/kbench 20b 128 > $OUT/kb_$v.txt 2>&1; grep -E "moe_|attention_decode|matvec|router|bandwidth" $OUT/kb_$v.txt | head -12
done
for rows in 16,8 64,4 32,16 64,16; do
  echo "== kbench ROWS=$rows bits"; OSS_WGPU_TUNE_MOE=bits OSS_WGPU_TUNE_MOE_ROWS=$rows timeout 120 .gpu/bin/kbench 20b 128 2>&1 | grep -E "moe_" | head -3
done
echo "elapsed $(( $(date +%s) - T0 ))"
for v in "" bits; do
  echo "== bench MOE=$v"; OSS_WGPU_TUNE_MOE=$v timeout 200 .gpu/bin/oss-wgpu bench --synthetic 20b --pp 512 --depths 0,4096 --tg 64 --reps 2 > $OUT/bench_$v.txt 2>&1; grep -E "tg|pp|tok/s" $OUT/bench_$v.txt | head -12
done
echo "elapsed $(( $(date +%s) - T0 ))"
