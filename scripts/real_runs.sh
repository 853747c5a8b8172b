#!/usr/bin/env bash
# Full-data runs behind the figures in the issues' closing notes (2-core CPU: hours in all).
# usage: bash scripts/real_runs.sh SECTION...   sections: teachers, other-teachers, distill-sst2, distill-pairs,
#        mpnet, narrow, general, augmented, squad, cross, relations, relations-general, embedding, throughput, bench,
#        prune-demo, prune-rounds, prune-mpnet, prune-embed, small-sets, distilbert-real, frontier
# PRECISION=bf16 runs every training and teacher pass under bf16 autocast (fast only on CPUs with AMX / AVX512-BF16).
# Outputs go to $RUNS (default runs/real); every run keeps metrics.json, log.jsonl and the model.
set -euo pipefail
RUNS=${RUNS:-runs/real}
A=${ALEMBERT:-alembert}
T="--threads ${THREADS:-2}${PRECISION:+ --mixed-precision $PRECISION}"
mkdir -p "$RUNS"

teachers() {  # issue 2: minilm-l6 fine-tuned on five GLUE tasks, full training sets
  $A finetune --model minilm-l6 --task sst2 --epochs ${SST2_TEACHER_EPOCHS:-2} --eval-every 500 --output "$RUNS/teacher-sst2" $T --overwrite
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

general() {  # issue 4: 300 steps of general distillation on the novels (batch 32 x 128 tokens), then kd on
  # SST-2 (first 20,000 sentences, 1 epoch) and MRPC (3 epochs), beside the same 3-layer slice without the general stage
  $A distill-general --teacher minilm-l6 --recipe tinybert-general --corpus ../shared/data/corpus/gutenberg \
    --student-layers 0,2,4 --max-steps 300 --batch-size 32 --output "$RUNS/general-minilm3" $T --overwrite
  for s in general minilm-l6; do
    if [ $s = minilm-l6 ]; then st="minilm-l6 --student-layers 0,2,4"; tag=slice; else st="$RUNS/general-minilm3"; tag=general; fi
    $A distill --teacher "$RUNS/teacher-sst2" --student $st --recipe kd --task sst2 --max-train-samples 20000 \
      --epochs 1 --output "$RUNS/sst2-20k-kd-$tag" $T --overwrite
    $A distill --teacher "$RUNS/teacher-mrpc" --student $st --recipe kd --task mrpc --epochs 3 --output "$RUNS/mrpc-kd-$tag" $T --overwrite
  done
}

augmented() {  # issue 4: MRPC task distillation on TinyBERT-augmented data (embedding neighbours, n=4), beside mrpc-kd-slice
  $A augment --task mrpc --n 4 --output "$RUNS/mrpc_aug.tsv" --overwrite $T
  $A distill --teacher "$RUNS/teacher-mrpc" --student minilm-l6 --student-layers 0,2,4 --recipe kd --task mrpc \
    --train-file "$RUNS/mrpc_aug.tsv" --epochs 1 --output "$RUNS/mrpc-kd-aug" $T --overwrite
}

squad() {  # issue 8: minilm-l6 on the default SQuAD split (38 train / 10 test articles), then 3-layer students
  $A finetune --model minilm-l6 --task squad --epochs ${SQUAD_EPOCHS:-2} --output "$RUNS/teacher-squad" $T --overwrite
  for recipe in ce kd pkd-skip; do
    $A distill --teacher "$RUNS/teacher-squad" --task squad --recipe $recipe --student-layers 0,2,4 --epochs ${SQUAD_EPOCHS:-2} \
      --output "$RUNS/squad-$recipe" $T --overwrite
  done
}

cross() {  # issue 9: MPNet-12 teacher (first 4,000 SST-2) -> 3-layer MiniLM slice; transfer = the rest of SST-2
  local C="--teacher $RUNS/teacher-mpnet-sst2 --student minilm-l6 --student-layers 0,2,4 --cross-tokenizer strict --task sst2
           --max-train-samples 4000 --max-length 64 $T --overwrite"
  $A distill $C --recipe ce --epochs 3 --output "$RUNS/cross-ce-4k"                      # the student alone, gold 4k
  $A distill $C --recipe kd --transfer train-rest --max-transfer-samples 16000 --epochs 2 --output "$RUNS/cross-kd-20k"
  $A distill $C --recipe kd --transfer train-rest --epochs 2 --output "$RUNS/cross-kd-full"
  $A distill $C --recipe tinybert --transfer train-rest --max-transfer-samples 16000 --epochs 1 --output "$RUNS/cross-tinybert-20k"
  $A distill $C --recipe kd --transfer train-rest --epochs 3 --lr 1e-4 --output "$RUNS/cross-kd-full-3ep"   # the best
}

relations() {  # issue 17 (a): relations vs TinyBERT's intermediate losses across families, same 20k as cross()
  [ -f "$RUNS/teacher-mpnet-sst2/metrics.json" ] || $A finetune --model mpnet-base --task sst2 --max-train-samples 4000 \
    --epochs 1 --lr 3e-5 --max-length 64 --output "$RUNS/teacher-mpnet-sst2" $T --overwrite
  local C="--teacher $RUNS/teacher-mpnet-sst2 --student minilm-l6 --student-layers 0,2,4 --cross-tokenizer strict --task sst2
           --max-train-samples 4000 --max-length 64 --transfer train-rest --max-transfer-samples 16000 $T --overwrite"
  $A distill $C --recipe kd --epochs 2 --output "$RUNS/rel-kd-20k"              # logit KD alone (cross() row 1)
  $A distill $C --recipe tinybert --epochs 1 --output "$RUNS/rel-tinybert-20k"  # TinyBERT intermediate + KD (cross() row 2)
  $A distill $C --recipe minilm --epochs 1 --output "$RUNS/rel-minilm-20k"      # MiniLM v1: attention + value relation (12 = 12 heads)
  $A distill $C --recipe minilmv2 --epochs 1 --output "$RUNS/rel-minilmv2-20k"  # MiniLMv2: Q-Q/K-K/V-V relations, 12 relation heads
}

relations_general() {  # issue 17 (b), (c): a narrow random-init student, MiniLMv2 relations on the novels, then kd on the
  # same 20k SST-2 sentences as relations(), beside the same student without the general stage; then zero-shot STS-B
  # (session 7, PRECISION=bf16 THREADS=1 on an AVX512-BF16 EPYC: general stage 40 min, each task stage 3-4 min)
  local N="num_layers=4,hidden_size=384,intermediate_size=1536,num_heads=12"
  [ -f "$RUNS/teacher-mpnet-sst2/metrics.json" ] || $A finetune --model mpnet-base --task sst2 --max-train-samples 4000 \
    --epochs 1 --lr 3e-5 --max-length 64 --output "$RUNS/teacher-mpnet-sst2" $T --overwrite
  $A distill-general --teacher mpnet-base --recipe minilmv2-general --corpus ../shared/data/corpus --student-config $N \
    --max-length 64 --batch-size 32 --max-steps 1200 --lr 6e-4 --save-every 100 --output "$RUNS/general-narrow-minilmv2" $T --overwrite
  local C="--teacher $RUNS/teacher-mpnet-sst2 --task sst2 --max-train-samples 4000 --max-length 64 --transfer train-rest
           --max-transfer-samples 16000 --recipe kd --epochs 2 $T --overwrite"
  $A distill $C --student "$RUNS/general-narrow-minilmv2" --output "$RUNS/narrow-kd-20k-general"
  $A distill $C --student-config $N --output "$RUNS/narrow-kd-20k-random"
  $A evaluate "$RUNS/general-narrow-minilmv2" --task stsb-zeroshot --max-length 128 --pooling mean
}

embedding() {  # issue 16: MPNet sentence-embedding teacher -> 3 layers of minilm-l6 (+ Dense 384->768) on raw text:
  # the first 50,000 texts of SQuAD dev paragraphs+questions (non-test articles) and five GLUE training sets' sentences
  # (session 6, PRECISION=bf16 on an AMX Xeon: teacher cache 20 min, training 20 min on a busy machine); then its int8 export
  local C="--teacher mpnet-base --corpus squad --transfer-task stsb,mrpc,rte,cola,sst2 --max-texts ${EMBED_TEXTS:-50000}
           --max-length 128 --eval-tasks stsb-zeroshot,squad-retrieval --batch-size 64 --eval-every 250 --save-every 250 $T"
  $A distill-general $C --recipe embed-mse --student minilm-l6 --student-layers 0,2,4 --epochs 3 --lr 5e-4 \
    --output "$RUNS/embed-50k-mse" --overwrite
  $A export "$RUNS/embed-50k-mse" --onnx --quantize int8 --output "$RUNS/embed-50k-int8" --overwrite
  $A evaluate "$RUNS/embed-50k-int8" --task stsb-zeroshot --max-length 128
}

throughput() {  # issue 6: alembert kd vs a Trainer KD loop vs the student alone, full SST-2, 3 epochs (two at a time)
  # PRECISION=bf16 (every variant under bf16 autocast): ~80 min on a 2-core AMX Xeon; fp32 (no): ~2.5 h there
  python benchmarks/distill_throughput.py --teacher "$RUNS/teacher-sst2" --task sst2 --epochs 3 --threads 1 --jobs 2 \
    --mixed-precision "${PRECISION:-no}" --output "$RUNS/bench-throughput-full${PRECISION:+-$PRECISION}"
}

bench() {  # issues 5 and 9: speed/size/retention tables (1 thread; run on an otherwise idle machine)
  local S=${BENCH_STUDENT:-$RUNS/sst2-distilbert}  # session 3: BENCH_STUDENT=$RUNS/sst2-kd
  $A export "$S" --onnx --output "$S-onnx" --overwrite
  $A export "$S" --onnx --quantize int8 --full-last-layer --output "$S-int8-all-tokens" --overwrite
  $A export "$S" --onnx --quantize int8 --output "$S-int8" --overwrite
  $A bench "$RUNS/teacher-sst2" "$S" "$S-onnx" "$S-int8-all-tokens" "$S-int8" --task sst2 --threads 1 --output "$RUNS/bench-sst2"
  $A bench "$RUNS/teacher-mpnet-sst2" "$RUNS/cross-kd-full-3ep" --task sst2 --threads 1 --output "$RUNS/bench-cross"
  $A bench "$RUNS/teacher-squad" "$RUNS/squad-kd" --task squad --threads 1 --output "$RUNS/bench-squad"
}

prune_demo() {  # issue 36 (a): the demo's minilm-l6 SST-2 teacher (make demo), 6-layer pruned students beside
  # the 3-layer slice and a random-init student of the pruned shape: same recipe (pkd-skip), data and steps
  local TEACHER=${DEMO_TEACHER:-runs/demo/teacher} D="--task sst2 --max-train-samples ${N:-8000} --epochs ${EPOCHS:-1}"
  $A distill --teacher "$TEACHER" $D --student-layers 0,2,4 --output "$RUNS/prune-a-slice" $T --overwrite
  $A distill --teacher "$TEACHER" $D --student-prune heads=8,ffn=1024 --output "$RUNS/prune-a-h8-ffn1024" $T --overwrite
  $A distill --teacher "$TEACHER" $D --student-prune ffn=256 --output "$RUNS/prune-a-ffn256" $T --overwrite
  $A distill --teacher "$TEACHER" $D --student-config num_layers=6,hidden_size=256,num_heads=8,intermediate_size=1024 \
    --output "$RUNS/prune-a-random-h8-ffn1024" $T --overwrite
  # the int8 batch-32 throughput of the slice, with 6 layers: 6 heads (hidden 192) x FFN 512 (measured by bench)
  $A distill --teacher "$TEACHER" $D --student-prune heads=6,ffn=512 --output "$RUNS/prune-a-h6-ffn512" $T --overwrite
  $A distill --teacher "$TEACHER" $D --student-config num_layers=6,hidden_size=192,num_heads=6,intermediate_size=512 \
    --output "$RUNS/prune-a-random-h6-ffn512" $T --overwrite
  for m in slice h8-ffn1024 ffn256 random-h8-ffn1024 h6-ffn512 random-h6-ffn512; do
    $A export "$RUNS/prune-a-$m" --onnx --quantize int8 --output "$RUNS/prune-a-$m-int8" --overwrite
  done
  $A bench "$TEACHER" "$RUNS"/prune-a-{slice,h6-ffn512,random-h6-ffn512,h8-ffn1024,ffn256,random-h8-ffn1024}-int8 \
    --task sst2 --threads 1 \
    --output "$RUNS/prune-a-bench"
}

prune_iterative() {  # issue 36 (a): iterative pruning (cut, distil, cut again from the distilled student) against
  # the one-shot cut of prune-demo at equal steps: 125 + 125 steps vs 250 (1 epoch of 8k at batch 32)
  local TEACHER=${DEMO_TEACHER:-runs/demo/teacher} D="--task sst2 --max-train-samples ${N:-8000} --max-steps 125"
  $A distill --teacher "$TEACHER" $D --student-prune heads=9,ffn=1024 --output "$RUNS/prune-a-iter1" $T --overwrite
  $A distill --teacher "$TEACHER" $D --seed 1 --student "$RUNS/prune-a-iter1" --student-prune heads=6,ffn=512 \
    --output "$RUNS/prune-a-iter2" $T --overwrite
}

prune_rounds() {  # issue 36 (a): iterative pruning inside one run (--prune-rounds N: cut, distil, cut again between
  # stages) against the one-shot cut, same recipe (pkd-skip), data, batch order and 250 steps; three seeds each
  local TEACHER=${DEMO_TEACHER:-runs/demo/teacher} D="--task sst2 --max-train-samples ${N:-8000} --epochs ${EPOCHS:-1}"
  for seed in ${SEEDS:-42 1 2}; do
    for rounds in ${ROUNDS:-1 2 3 4}; do
      $A distill --teacher "$TEACHER" $D --seed $seed --student-prune heads=6,ffn=512 --prune-rounds $rounds \
        --output "$RUNS/prune-rounds-r$rounds-s$seed" $T --overwrite
    done
  done
  for rounds in ${ROUNDS:-1 2 3 4}; do
    $A export "$RUNS/prune-rounds-r$rounds-s42" --onnx --quantize int8 --output "$RUNS/prune-rounds-r$rounds-s42-int8" \
      --overwrite
  done
  local exports=() rounds
  for rounds in ${ROUNDS:-1 2 3 4}; do exports+=("$RUNS/prune-rounds-r$rounds-s42-int8"); done
  $A bench "$TEACHER" "${exports[@]}" --task sst2 --threads 1 --output "$RUNS/prune-rounds-bench"
}

prune_mpnet() {  # issue 36 (b): mpnet-base fine-tuned on 8k SST-2 sentences, pruned to 6 layers (FFN 1536, then
  # also 8 heads = hidden 512) and recovered with logit KD on the 8k + 16k teacher-labelled SST-2 sentences
  local TEACHER=${MPNET_TEACHER:-$RUNS/teacher-mpnet-sst2}
  local D="--task sst2 --max-train-samples 8000 --transfer train-rest --max-transfer-samples 16000 --epochs 2"
  $A distill --teacher "$TEACHER" --recipe kd $D --student-prune ffn=1536,layers=0,2,4,6,8,10 \
    --output "$RUNS/prune-b-6l-ffn1536" $T --overwrite
  $A distill --teacher "$TEACHER" --recipe kd $D --student-prune heads=8,ffn=1536,layers=0,2,4,6,8,10 \
    --output "$RUNS/prune-b-6l-h8-ffn1536" $T --overwrite
  for m in 6l-ffn1536 6l-h8-ffn1536; do
    $A export "$RUNS/prune-b-$m" --onnx --quantize auto --output "$RUNS/prune-b-$m-int8" --overwrite
  done
  $A bench "$TEACHER" "$RUNS"/prune-b-{6l-ffn1536,6l-h8-ffn1536}-int8 --task sst2 --threads 1 --output "$RUNS/prune-b-bench"
}

prune_embed() {  # issue 36 (c): mpnet-base pruned to all-MiniLM-L6-v2's shape (6 x 384, 6 heads, FFN 1536) and to
  # 6 layers x 768 with FFN 1536, embed-mse on the texts of the best 3-layer slice (session 9); the Dense layer to 768
  # of the narrow one starts as the selection of the kept dimensions
  local C="--recipe embed-mse --teacher mpnet-base --corpus squad ../shared/data/corpus --transfer-task stsb,mrpc,rte,cola,sst2"
  C="$C --max-length 128 --eval-tasks stsb-zeroshot,squad-retrieval --batch-size 64 --lr 5e-4 --save-every 500"
  $A distill-general $C --student-prune heads=6,ffn=1536,layers=0,2,4,6,8,10 --epochs 3 --eval-every 2000 \
    --output "$RUNS/prune-c-minilm-shape" $T
  $A distill-general $C --student-prune ffn=1536,layers=0,2,4,6,8,10 --epochs 1 --eval-every 1000 \
    --output "$RUNS/prune-c-6l-ffn1536" $T
  $A bench mpnet-base "$RUNS/prune-c-minilm-shape" "$RUNS/prune-c-6l-ffn1536" minilm-l6 "${SLICE:-$RUNS/small-teacher-3ep}" \
    --task stsb-zeroshot --threads 1 --output "$RUNS/prune-c-bench"
}

small_sets() {  # issue 34: on each small set, the 3-layer MiniLM slice alone (ce), kd without transfer text (the old
  # default) and kd with the default transfer set (other training rows, then augmentation, labelled by the teacher's
  # fastest export), same epochs of gold data; MPNet-12 teachers fine-tuned first (lr 3e-5, bf16 where PRECISION says)
  local tasks=${SMALL_TASKS:-sst2 rte mrpc cola stsb}
  for task in $tasks; do
    local L=128 N="" E=3; [ "$task" = sst2 ] && L=64 N="--max-train-samples 4000" E=2; [ "$task" = cola ] && L=64
    [ -f "$RUNS/small-teacher-$task/metrics.json" ] || $A finetune --model mpnet-base --task $task $N --epochs $E \
      --max-length $L --lr 3e-5 --save-every 50 --output "$RUNS/small-teacher-$task" $T --overwrite
    local C="--teacher $RUNS/small-teacher-$task --student minilm-l6 --student-layers 0,2,4 --cross-tokenizer strict
             --task $task $N --max-length $L --epochs 3 --save-every 200 $T --overwrite"
    $A distill $C --recipe ce --output "$RUNS/small-$task-ce"
    $A distill $C --recipe kd --transfer none --output "$RUNS/small-$task-kd-none"
    $A distill $C --recipe kd ${SMALL_TRANSFER:+--transfer-size $SMALL_TRANSFER} --output "$RUNS/small-$task-kd-transfer"
  done
}

distilbert_real() {  # issue 33: all-mpnet-base-v2 adapted to masked-LM on six novels (held out: Moby-Dick and the held-out
  # SQuAD articles' paragraphs); DistilBERT's triple loss into its every-other-layer 6-layer slice and the two ablations
  # (corpus of both: the novels, the SQuAD training paragraphs, the GLUE training texts); then the GLUE table: the adapted
  # 12-layer teacher, the distilled 6-layer student and the same slice without the general stage, fine-tuned alike
  local G=../shared/data/corpus/gutenberg NOVELS; NOVELS=$(ls $G/*.txt | grep -v moby)
  $A adapt-mlm --model mpnet-base --corpus squad $NOVELS --transfer-task sst2,mrpc,rte,cola,stsb \
    --eval-text $G/melville-moby_dick.txt squad --batch-size 16 --epochs 3 --heldout 64 --pppl-sequences 1 --head-steps 150 --max-steps ${MLM_STEPS:-1500} --eval-every 150 --save-every 50 \
    --output "$RUNS/mpnet-mlm" $T
  for recipe in distilbert-general distilbert-general-no-cos distilbert-general-no-kd; do
    $A distill-general --teacher "$RUNS/mpnet-mlm" --recipe $recipe --corpus squad $NOVELS \
      --transfer-task sst2,mrpc,rte,cola,stsb --student-layers 0,2,4,6,8,10 --epochs 3 --max-steps ${GENERAL_STEPS:-2000} \
      --batch-size 32 --save-every 100 --output "$RUNS/mpnet6-$recipe" $T
  done
  for task in ${GLUE_TASKS:-sst2 mrpc stsb rte cola}; do
    local S="--task $task --epochs 3 --lr 3e-5 --save-every 100 $T"
    $A finetune --model "$RUNS/mpnet-mlm" $S --output "$RUNS/glue-$task-teacher12"
    for recipe in distilbert-general distilbert-general-no-cos distilbert-general-no-kd; do
      $A finetune --model "$RUNS/mpnet6-$recipe" $S --output "$RUNS/glue-$task-$recipe"
    done
    $A distill --teacher "$RUNS/glue-$task-teacher12" --student mpnet-base --student-layers 0,2,4,6,8,10 --recipe ce $S \
      --output "$RUNS/glue-$task-slice6"
  done
}

frontier() {  # issue 31: the two frontiers, 3 hours of training each (the time budget; exports and bench on top):
  # SST-2 with the MPNet-12 teacher of issue 30 (MPNET_TEACHER), and mpnet-base on STS-B (+ SQuAD retrieval in its
  # students' metrics) from the embedding runs' texts; each bench on $BENCH_THREADS threads (default 1)
  $A frontier --teacher "${MPNET_TEACHER:-$RUNS/mpnet-sst2/teacher}" --task sst2 --max-train-samples 8000 \
    --transfer train-rest --max-transfer-samples 16000 --epochs 2 --time-budget ${FRONTIER_BUDGET:-3h} --speedup 10 \
    --bench-threads ${BENCH_THREADS:-1} --save-every 200 --output "$RUNS/frontier-sst2" $T
  $A frontier --teacher mpnet-base --task stsb-zeroshot --corpus squad ../shared/data/corpus \
    --transfer-task stsb,mrpc,rte,cola,sst2 --max-length 128 --epochs 1 --time-budget ${FRONTIER_BUDGET:-3h} \
    --bench-threads ${BENCH_THREADS:-1} --save-every 500 --output "$RUNS/frontier-embed" $T
}

for section in "$@"; do
  "${section//-/_}"
done
