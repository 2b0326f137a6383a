#!/usr/bin/env bash
# Makes the demo prompts from text: dialplans/prompts/prompts.txt (name | text) ->
# dialplans/prompts/<name>.wav, 8 kHz mono 16-bit PCM. Needs espeak-ng and sox
# (apt install espeak-ng sox). Usage: scripts/make-prompts.sh [prompts.txt]
# Reproducible: the same text gives the same bytes (sox -R seeds its generators and
# -D turns dither off), so the committed prompts only change when their text does.
set -euo pipefail
list=${1:-dialplans/prompts/prompts.txt}
dir=$(dirname "$list")
for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "make-prompts: $tool is not installed (apt install espeak-ng sox)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
while IFS='|' read -r name text; do
    name=$(echo "$name" | xargs)
    [[ -z "$name" || "$name" == \#* ]] && continue
    text=$(echo "$text" | sed 's/^ *//; s/ *$//')
    espeak-ng -s 155 -v en-us -w "$tmp/$name.wav" -- "$text"
    # 8 kHz telephone band, a little headroom, 100 ms of silence at the end.
    sox -R -D "$tmp/$name.wav" -r 8000 -c 1 -b 16 "$dir/$name.wav" highpass 200 lowpass 3400 gain -n -3 pad 0 0.1
    n=$((n + 1))
done < "$list"
echo "make-prompts: $n prompts written to $dir"
# Hold music: a soft arpeggio, 8 s, looped by the queue.
if [[ "$(basename "$list")" == prompts.txt ]]; then
    notes=(C4 E4 G4 C5 A3 C4 E4 A4 F3 A3 C4 F4 G3 B3 D4 G4)
    parts=()
    for i in "${!notes[@]}"; do
        sox -R -D -n -r 8000 -c 1 -b 16 "$tmp/n$i.wav" synth 0.5 pluck "${notes[$i]}" fade 0 0.5 0.3 vol 0.3
        parts+=("$tmp/n$i.wav")
    done
    sox -R -D "${parts[@]}" "$dir/hold-music.wav"
    echo "make-prompts: hold-music.wav written to $dir"
fi
