#!/usr/bin/env bash
# Regenerates tests/data/sentencepiece/: trains small unigram models with the real sentencepiece
# tools (Debian package `sentencepiece`) on a corpus written here, and records what spm_encode,
# spm_normalize and spm_decode give for the test sentences. The tests read these files; they never
# run the tools. Requires: apt-get install sentencepiece
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/data/sentencepiece
mkdir -p "$out"
command -v spm_train >/dev/null || { echo "needs spm_train (apt-get install sentencepiece)" >&2; exit 1; }
spm_train --version 2>/dev/null > "$out/VERSION" || true

# ---- training corpus: captions and questions, accents, full-width forms, digits, odd spacing ----
cat > "$out/corpus.txt" <<'TXT'
a photo of an astronaut riding a horse on the moon
a man riding a bike down a city street next to tall buildings
two dogs playing with a red frisbee in the park on a sunny day
Question: what is the cat doing? Answer: sleeping on the sofa
Question: how many people are in the picture? Answer: three
Question: what color is the bus? Answer: yellow and blue
a plate of food with rice, beans and a salad on a wooden table
a group of people standing around a kitchen preparing dinner together
an airplane flying over the ocean under a cloudy sky
the train arrives at 10:45 and leaves at 11:05 from platform 9
In 2023 the museum had 1,234,567 visitors and 3.14 percent more than 2022.
Call 555-0199 or write to info@example.com before 31/12/2024.
Le café est très célèbre à Paris; les élèves déjeunent près de l'école.
Der Bär läuft über die Straße, und die Füße sind müde.
El niño comió una piña en la mañana con su señora madre.
São Paulo é uma cidade enorme; a população é diversa.
naïve résumé coöperate façade jalapeño Ångström Øresund
ＦＵＬＬ ＷＩＤＴＨ ｔｅｘｔ ａｎｄ ｄｉｇｉｔｓ １２３４５ in the same line
full-width punctuation： ＡＢＣ！ ｘｙｚ？ （ｐａｒｅｎｓ）
half-width katakana ｶﾀｶﾅ and ligatures ﬁ ﬂ and roman numerals Ⅻ ⅳ
superscripts x² y³ and fractions ½ ¾ and circled ① ②
   leading spaces and    many   inner   spaces and trailing spaces   
tabs	between	words	here and there
a cat sitting on a laptop keyboard next to a cup of coffee
a kitchen with a stove, a sink and a refrigerator
a close up of a pizza with cheese and pepperoni on it
a woman holding an umbrella in the rain on a busy street
people skiing down a snowy mountain slope on a clear day
a black and white photo of a vintage car parked by the road
a bowl of fruit with apples, oranges and bananas
the quick brown fox jumps over the lazy dog 0123456789
THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG
Mixed CaSe WoRdS and UPPER lower Title Case
東京は日本の首都です。 北京是中国的首都。
서울은 한국의 수도입니다.
Москва — столица России.
a giraffe standing next to a tree in a zoo enclosure
a small boat floating on a calm lake at sunset
a child flying a kite on the beach with the waves behind
a bathroom with a white sink, a mirror and a toilet
a baseball player swinging a bat at a ball during a game
a teddy bear sitting on a bed with pillows
an elephant walking through tall grass in the savanna
a clock tower with the time showing 12:30 in the afternoon
a stop sign on the corner of a street with trees behind it
TXT
# repeat the corpus so that frequent pieces get stable scores
for i in 1 2 3 4; do cat "$out/corpus.txt"; done > /tmp/spm_corpus_x4.txt

common=(--input=/tmp/spm_corpus_x4.txt --model_type=unigram --num_threads=1 --input_sentence_size=100000
        --shuffle_input_sentence=false --minloglevel=2)
# 1. T5-like: nmt_nfkc normalisation, dummy prefix, extra white space removed; <pad>=0 </s>=1 <unk>=2.
spm_train "${common[@]}" --model_prefix="$out/nfkc" --vocab_size=300 --character_coverage=0.995 \
  --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1 >/dev/null 2>&1
# 2. byte fallback, identity normalisation, no dummy prefix, spaces kept, a user-defined symbol.
spm_train "${common[@]}" --model_prefix="$out/bytes" --vocab_size=400 --character_coverage=0.98 \
  --byte_fallback=true --normalization_rule_name=identity --add_dummy_prefix=false \
  --remove_extra_whitespaces=false --user_defined_symbols='<sep>' >/dev/null 2>&1
rm -f "$out"/*.vocab

# ---- test sentences (one per line; line 2 is empty; some lines hold malformed UTF-8) ----
{
  printf '%s\n' "a photo of an astronaut riding a horse on the moon"
  printf '\n'
  printf '%s\n' "Question: what is the cat doing? Answer:"
  printf '%s\n' "  leading and trailing spaces  "
  printf '%s\n' "many     inner      spaces"
  printf 'tabs\tand\ttabs\n'
  printf '%s\n' "Le café est très célèbre; naïve résumé"
  printf '%s\n' "ＦＵＬＬ ＷＩＤＴＨ ｔｅｘｔ １２３４５ and （ｐａｒｅｎｓ）！"
  printf '%s\n' "ﬁnance ﬂow Ⅻ x² ½ ① ｶﾀｶﾅ"
  printf '%s\n' "numbers 1234567 and 3.14159, e-mail: test@example.com"
  printf '%s\n' "emoji 😀👍🏽 and symbols ©®™ ∑∫√"
  printf '%s\n' "東京は日本の首都です。 北京是中国的首都。 서울은 한국의 수도"
  printf '%s\n' "Москва — столица России. Ελληνικά"
  printf '%s\n' "UPPER lower MiXeD CaSe"
  printf '%s\n' "wasn't isn't they're we'll I'd you've"
  printf '%s\n' "a <sep> b<sep>c"
  printf '%s\n' "   "
  printf 'bad \xff\xfe bytes and caf\xc3 end\n'
  printf 'truncated \xe2\x82 and lone \x80 continuation\n'
  printf '%s\n' "zebra xylophone quizzically jukebox"
  printf '%s\n' "ℌℍ ㍿ ㈱ ﹏ 〜 ～ ・ ･"
  printf 'nbsp\xc2\xa0here and ideographic\xe3\x80\x80space\n'
} > "$out/sentences.txt"

# ---- id sequences to decode: byte pieces (incl. malformed UTF-8), control/unk ids, spaces ----
cat > "$out/decode_ids.txt" <<'TXT'
3 4 5 6 7 8 9 10
0 1 2 3
2 2 2
TXT
for m in nfkc bytes; do
  spm_encode --model="$out/$m.model" --output_format=id < "$out/sentences.txt" > "$out/$m.ids.txt"
  spm_encode --model="$out/$m.model" --output_format=piece < "$out/sentences.txt" > "$out/$m.pieces.txt"
  spm_normalize --model="$out/$m.model" --use_internal_normalization < "$out/sentences.txt" > "$out/$m.normalized.txt" 2>/dev/null
  spm_decode --model="$out/$m.model" --input_format=id < "$out/$m.ids.txt" > "$out/$m.decoded.txt"
done
# byte pieces of the byte-fallback model: <0x41> is id 3 + 0x41 + (pieces before the bytes)
first_byte=$(grep -n '^<0x00>' <(spm_export_vocab --model="$out/bytes.model") | cut -d: -f1)
b() { echo $((first_byte - 1 + $1)); }
{
  cat "$out/decode_ids.txt"
  echo "$(b 0x48) $(b 0x69) $(b 0x20) $(b 0xE2) $(b 0x82) $(b 0xAC)"   # "Hi €"
  echo "$(b 0xFF) $(b 0x41) $(b 0xC3) $(b 0xE2) $(b 0x82) 300 $(b 0xF0) $(b 0x9F) $(b 0x98) $(b 0x80)"  # malformed mix
  echo "$(b 0x20) 300 301 $(b 0x20)"
} > "$out/bytes.decode_ids.txt"
cp "$out/decode_ids.txt" "$out/nfkc.decode_ids.txt"
echo "150 151 152 0 153 1 2 2 154" >> "$out/nfkc.decode_ids.txt"
for m in nfkc bytes; do
  spm_decode --model="$out/$m.model" --input_format=id < "$out/$m.decode_ids.txt" > "$out/$m.decode_ids.out.txt"
done
rm -f "$out/decode_ids.txt"
ls -la "$out"
