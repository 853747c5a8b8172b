#!/usr/bin/env bash
# The main job, end to end on the packaged teacher (all-MiniLM-L6-v2) and real SST-2:
# fine-tune the teacher, distil a half-depth student, export both to ONNX with --quantize auto
# (the variant measured fastest on this CPU within 1 point of dev accuracy: usually int8), and
# benchmark all four: teacher-int8 shows what distillation buys beyond quantisation.
# A training subset keeps it near 10 minutes on a 2-core CPU; scripts/real_runs.sh has the full-data runs.
set -euo pipefail
RUNS=${RUNS:-runs}/demo
N=${DEMO_TRAIN:-8000}
mkdir -p "$RUNS"
echo "== alembert demo: SST-2, first $N training sentences (a subset, for time), full dev set (872)"
start=$(date +%s)

echo "== 1/4 fine-tune the teacher (minilm-l6: BERT, 6 layers, hidden 384)"
alembert finetune --model minilm-l6 --task sst2 --max-train-samples "$N" --epochs 1 --lr 5e-5 \
  --output "$RUNS/teacher" --overwrite

echo "== 2/4 distil a 3-layer student (teacher layers 0,2,4) with the default recipe: half the gold sentences, the"
echo "      other half as transfer text the teacher labels (the default would fill up to 20,000; sized here for time)"
alembert distill --teacher "$RUNS/teacher" --task sst2 --max-train-samples $(( N / 2 )) --transfer-size $(( N / 2 )) \
  --epochs 1 --output "$RUNS/student" --overwrite

echo "== 3/4 export student and teacher to ONNX, --quantize auto (measured on this CPU; why: alembert_export.json)"
alembert export "$RUNS/student" --onnx --quantize auto --output "$RUNS/student-int8" --overwrite
alembert export "$RUNS/teacher" --onnx --quantize auto --output "$RUNS/teacher-int8" --overwrite

echo "== 4/4 bench: teacher, student, int8 student and int8 teacher in one run (fixed 128 tokens and real sentence lengths)"
alembert bench "$RUNS/teacher" "$RUNS/student" "$RUNS/student-int8" "$RUNS/teacher-int8" --task sst2 --repeats 3 \
  --output "$RUNS/bench" > "$RUNS/bench.log"

echo "== results (the bench's printout: $RUNS/bench.log)"
python "$(dirname "$0")/summary.py" "$RUNS/bench"
echo "demo wall time: $(( $(date +%s) - start )) s"
