#!/usr/bin/env bash
# Full-data runs behind the figures in the issues' closing notes (2-core CPU: hours in all).
# usage: bash scripts/real_runs.sh SECTION...   sections: teachers, distill-sst2, distill-pairs
# Outputs go to $RUNS (default runs/real); every run keeps metrics.json, log.jsonl and the model.
set -euo pipefail
RUNS=${RUNS:-runs/real}
A=${ALEMBERT:-alembert}
T="--threads ${THREADS:-2}"
mkdir -p "$RUNS"

teachers() {  # issue 2: minilm-l6 fine-tuned on five GLUE tasks, full training sets
  $A finetune --model minilm-l6 --task sst2 --epochs 2 --eval-every 500 --output "$RUNS/teacher-sst2" $T --overwrite
  for task in mrpc rte cola stsb; do
    $A finetune --model minilm-l6 --task $task --epochs 3 --output "$RUNS/teacher-$task" $T --overwrite
  done
}

distill_sst2() {  # issue 3: each recipe, 3-layer student from teacher layers 0,2,4, full SST-2, 1 epoch
  for recipe in ce kd distilbert pkd-skip pkd-last tinybert; do
    $A distill --teacher "$RUNS/teacher-sst2" --recipe $recipe --task sst2 --student-layers 0,2,4 \
      --epochs 1 --eval-every 700 --output "$RUNS/sst2-$recipe" $T --overwrite
  done
}

distill_pairs() {  # issue 3: MRPC and RTE, kd and pkd-skip beside the student alone
  for task in mrpc rte; do
    for recipe in ce kd pkd-skip; do
      $A distill --teacher "$RUNS/teacher-$task" --recipe $recipe --task $task --student-layers 0,2,4 \
        --epochs 3 --output "$RUNS/$task-$recipe" $T --overwrite
    done
  done
}

other_teachers() {  # issue 2: the four other GLUE tasks
  for task in mrpc rte cola stsb; do
    $A finetune --model minilm-l6 --task $task --epochs 3 --output "$RUNS/teacher-$task" $T --overwrite
  done
}

mpnet() {  # issue 3, paper scale: MPNet-12 teacher (first 4,000 SST-2 sentences), 6-layer student from every other layer
  $A finetune --model mpnet-base --task sst2 --max-train-samples 4000 --epochs 1 --lr 3e-5 --max-length 64 \
    --output "$RUNS/teacher-mpnet-sst2" $T --overwrite
  $A distill --teacher "$RUNS/teacher-mpnet-sst2" --recipe "${MPNET_RECIPE:-pkd-skip}" --task sst2 --max-train-samples 4000 \
    --max-length 64 --epochs 3 --lr 5e-5 --output "$RUNS/mpnet-sst2-${MPNET_RECIPE:-pkd-skip}" $T --overwrite
}

narrow() {  # issue 3: TinyBERT-shaped student (4 layers, hidden 192, random init) through the projections
  $A distill --teacher "$RUNS/teacher-sst2" --recipe tinybert --task sst2 \
    --student-config num_layers=4,hidden_size=192,intermediate_size=768,num_heads=12 \
    --epochs 1 --eval-every 700 --output "$RUNS/sst2-tinybert-4L192" $T --overwrite
}

general() {  # issue 4: general stage on the novels, then task stage; beside the same student without it
  $A distill-general --teacher minilm-l6 --recipe tinybert-general --corpus ../shared/data/corpus/gutenberg \
    --student-layers 0,2,4 --epochs 1 --batch-size 32 --output "$RUNS/general-minilm3" $T --overwrite
  for task in sst2 mrpc; do
    $A distill --teacher "$RUNS/teacher-$task" --student "$RUNS/general-minilm3" --recipe kd --task $task \
      --epochs $([ $task = sst2 ] && echo 1 || echo 3) --output "$RUNS/$task-kd-general" $T --overwrite
  done
}

augmented() {  # issue 4: MRPC task distillation on TinyBERT-augmented data (embedding neighbours, n=4)
  $A augment --task mrpc --n 4 --output "$RUNS/mrpc_aug.tsv" --overwrite
  $A distill --teacher "$RUNS/teacher-mrpc" --recipe kd --task mrpc --student-layers 0,2,4 --train-file "$RUNS/mrpc_aug.tsv" \
    --epochs 1 --output "$RUNS/mrpc-kd-aug" $T --overwrite
}

squad() {  # issue 8: minilm-l6 on the default SQuAD split (38 train / 10 test articles), then 3-layer students
  $A finetune --model minilm-l6 --task squad --epochs ${SQUAD_EPOCHS:-2} --output "$RUNS/teacher-squad" $T --overwrite
  for recipe in ce kd pkd-skip; do
    $A distill --teacher "$RUNS/teacher-squad" --task squad --recipe $recipe --student-layers 0,2,4 --epochs ${SQUAD_EPOCHS:-2} \
      --output "$RUNS/squad-$recipe" $T --overwrite
  done
}

cross() {  # issue 9: MPNet-12 teacher (first 4,000 SST-2) -> 3-layer MiniLM slice, transfer set = the rest of SST-2
  $A distill --teacher "$RUNS/teacher-mpnet-sst2" --student minilm-l6 --student-layers 0,2,4 --cross-tokenizer strict \
    --recipe kd --task sst2 --max-train-samples 4000 --transfer train-rest --max-length 64 --epochs 1 \
    --output "$RUNS/cross-kd-transfer" $T --overwrite
}

for section in "$@"; do
  "${section//-/_}"
done
