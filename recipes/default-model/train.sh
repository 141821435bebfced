#!/usr/bin/env bash
# How the PREVIOUS embedded default model (synthetic music only, replaced by real.sh's) was made, start to end, on a
# 2-core CPU (about an hour). Its frozen front end is still the one the current default uses.
# Usage: recipes/default-model/train.sh WORKDIR   (needs ../shared/data/deam for the real clips)
# Every stage is seeded; the model card (pdmer/assets/default/MODEL_CARD.md) records the numbers it gave.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:?usage: recipes/default-model/train.sh WORKDIR}
recipe=recipes/default-model
pdmer=.venv/bin/pdmer
mkdir -p "$work"

# The data: the synthetic per-listener benchmark (200 train songs, 80 train listeners) and the mix with 10 real
# DEAM clips (5 train, 2 val, 3 test; make_mix.py says which).
[ -d "$work/synth" ] || $pdmer synth "$work/synth" --seed 0 --n-train-songs 200 --n-train-listeners 80
[ -d "$work/mix" ] || .venv/bin/python $recipe/make_mix.py --synth "$work/synth" --deam ../shared/data/deam --out "$work/mix"
cache=(--cache "$work/cache")

# Stage 1: up to 1500 steps on the synthetic mean labels; best.safetensors is the best on validation.
[ -f "$work/stage1/model.safetensors" ] || \
    $pdmer train --config $recipe/1-pretrain.toml --data "$work/synth" "${cache[@]}" --out "$work/stage1"

# Stage 2, a choice made on validation: 300 more steps on mean labels with or without the 5 real training clips.
for candidate in synth mix; do
    [ -f "$work/stage2-$candidate/model.safetensors" ] || \
        $pdmer train --config $recipe/2-real-clips.toml --init "$work/stage1/best.safetensors" \
            --data "$work/$candidate" "${cache[@]}" --out "$work/stage2-$candidate"
done
$pdmer eval "$work/stage2-synth/model.safetensors" "$work/stage2-mix/model.safetensors" --data "$work/mix" \
    --split val --task dmer "${cache[@]}" --json "$work/stage2-val.json"
# The higher mean of valence and arousal CCC on the val split wins (the rule was fixed before the runs).
winner=$(.venv/bin/python -c "import json, sys
score = [(r['tasks']['dmer']['mean']['valence_ccc'] + r['tasks']['dmer']['mean']['arousal_ccc']) / 2
         for r in json.load(open(sys.argv[1]))]
print('synth' if score[0] >= score[1] else 'mix')" "$work/stage2-val.json")
echo "stage 2 winner: $winner"

# Stage 3: per-listener meta-training (MAML, paper eq. 6) on the synthetic listeners.
[ -f "$work/stage3/model.safetensors" ] || \
    $pdmer train --config $recipe/3-meta.toml --init "$work/stage2-$winner/model.safetensors" --data "$work/mix" \
        "${cache[@]}" --out "$work/stage3"
$pdmer export "$work/stage3/model.safetensors" -o "$work/stage3/model.onnx"
echo "copy $work/stage3/model.safetensors and model.onnx into pdmer/assets/default/"
