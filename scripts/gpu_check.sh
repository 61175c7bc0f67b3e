#!/usr/bin/env bash
# GPU checks of issue 23 on a machine with CUDA (run from the repository root): GPU tests, a CUDA cloud profile, a CUDA server vs a CPU server
# answering a CPU edge (same predictions).
set -u
# PLANNER_DATA_ROOT: where the Fashion-MNIST test files are, if not /usr/share/datasets/fashion-mnist
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PLANNER_CACHE=${PLANNER_CACHE:-/tmp/pcache} OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
echo "== GPU tests"; timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_devices.py 2>&1 | tail -6
echo "== CUDA cloud profile"
timeout 180 python3 -m planner profile --model resnet-fmnist --role cloud --device cuda --accuracy-limit 1000 \
  --payload-samples 50 --batch-sizes 1,4,16,64 --input-formats none --out $OUT/resnet-fmnist_cloud_gpu.json 2>&1 | tail -25
echo "== CUDA server vs CPU server, CPU edge"
python3 -m planner serve --model resnet-fmnist --device cuda --port 7100 > $OUT/serve_gpu.log 2>&1 &
python3 -m planner serve --model resnet-fmnist --device cpu --port 7101 > $OUT/serve_cpu.log 2>&1 &
sleep 25
timeout 200 python3 - <<'PY'
import planner
from planner.data import load_arrays
x, y = load_arrays("test")
x, y = x[:1000], y[:1000]
for plan in ("relu_3@4", "relu_5@1", "relu_5@q4", "cloud-only", "relu_3@raw"):
    rs = {}
    for name, port in (("gpu", 7100), ("cpu", 7101)):
        rep = planner.run(x, model="resnet-fmnist", cloud=f"127.0.0.1:{port}", link="1gbit", plan=plan, labels=y)
        rs[name] = rep
    a, b = rs["gpu"].predictions, rs["cpu"].predictions
    diff = sum(p != q for p, q in zip(a, b))
    print(f"{plan}: n={len(a)} differ={diff} ({100*diff/len(a):.2f} %) fallbacks gpu={rs['gpu'].fallbacks} "
          f"cpu={rs['cpu'].fallbacks} acc gpu={rs['gpu'].accuracy} cpu={rs['cpu'].accuracy}")
    gs = [r.server_tail_ms for r in rs["gpu"].results if r.server_tail_ms is not None]
    cs = [r.server_tail_ms for r in rs["cpu"].results if r.server_tail_ms is not None]
    import statistics as st
    print(f"   tail ms median gpu {st.median(gs):.3f} cpu {st.median(cs):.3f}")
PY
kill %1 %2 2>/dev/null; wait
tail -3 $OUT/serve_gpu.log
