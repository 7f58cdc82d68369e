"""Build a TINY Phi-3-architecture model with random weights, in the exact folder layout of the
microsoft/Phi-3-mini-4k-instruct-onnx CPU int4 release (genai_config.json, model.onnx,
model.onnx.data, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
added_tokens.json). Fully offline and deterministic.

- Tokenizer: Llama-2-style BPE (SentencePiece conventions: "▁" for spaces, byte fallback
  <0x00>..<0xFF>, <unk>/<s>/</s> at ids 0..2) trained with the `tokenizers` library on text
  generated here (industrial-maintenance English + JSON advice). Every printable ASCII character is
  a single token so constrained (guided) JSON decoding can always emit any JSON string.
  Phi-3's 11 added tokens follow in Phi-3's order; 1525 + 11 = 1536 tokens (a multiple of 64).
- Model: random-init transformers.Phi3ForCausalLM (hidden 64, 2 layers, 4 heads), converted to
  ONNX int4 for CPU by onnxruntime-genai's model builder.

Usage: python make_tiny_phi3.py --out OUT_DIR --work SCRATCH_DIR
Needs the build venv (see build.sh / requirements.txt): torch, transformers, tokenizers,
onnx, onnx-ir, onnxruntime, onnxruntime-genai.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# ---------------------------------------------------------------------------- Phi-3 constants
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
# Phi-3 added tokens, in Phi-3's order (ids 32000..32010 in Phi-3-mini)
PHI3_SPECIALS = [
    "<|endoftext|>",
    "<|assistant|>",
    "<|placeholder1|>",
    "<|placeholder2|>",
    "<|placeholder3|>",
    "<|placeholder4|>",
    "<|system|>",
    "<|end|>",
    "<|placeholder5|>",
    "<|placeholder6|>",
    "<|user|>",
]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>"]
TOTAL_VOCAB = 1536  # tokenizer size == model vocab_size
BASE_VOCAB = TOTAL_VOCAB - len(PHI3_SPECIALS)  # <unk>,<s>,</s> + 256 bytes + chars + merges
SPACE = "\u2581"  # SentencePiece "▁"

# Tiny model shape
HIDDEN, LAYERS, HEADS, INTERMEDIATE = 64, 2, 4, 256


# ---------------------------------------------------------------------------- training text
def _words(text):
    return text.split()


EQUIPMENT = _words("""pump motor compressor fan blower conveyor gearbox bearing shaft coupling impeller valve
actuator boiler chiller heat exchanger cooling tower turbine generator transformer inverter drive
spindle belt chain seal gasket filter strainer nozzle pipe hose tank vessel reactor mixer agitator
extruder press robot crane hoist elevator hydraulic unit pneumatic cylinder sensor transmitter
thermocouple accelerometer flowmeter manometer controller PLC relay contactor breaker cable
winding stator rotor housing casing foundation bolt lubricator oil reservoir""")
MEASURES = _words("""temperature vibration pressure flow current voltage power speed rpm frequency level
humidity torque load noise amplitude velocity acceleration displacement resistance insulation
viscosity particle count dew point differential pressure suction pressure discharge pressure
oil temperature winding temperature bearing temperature phase imbalance power factor""")
UNITS = [
    "C",
    "degC",
    "F",
    "bar",
    "psi",
    "kPa",
    "mm/s",
    "g",
    "um",
    "A",
    "V",
    "kW",
    "Hz",
    "rpm",
    "%",
    "l/min",
    "m3/h",
    "Nm",
    "dB",
    "ppm",
    "ohm",
    "MOhm",
    "s",
    "min",
    "h",
]
CAUSES = _words("""bearing wear misalignment imbalance looseness cavitation lubrication failure
insufficient lubrication contaminated oil clogged filter blocked suction valve leakage seal
failure worn impeller broken blade belt slippage overload overheating cooling failure fouled
heat exchanger low refrigerant sensor drift sensor fault wiring fault loose connection
phase loss voltage sag harmonic distortion insulation degradation resonance soft foot bent shaft
gear tooth damage air ingress dry running excessive load blocked vent stuck valve""")
ACTIONS = _words("""inspect check verify measure replace clean tighten lubricate grease realign
balance recalibrate calibrate monitor reduce increase schedule stop restart isolate drain flush
refill tension adjust test record compare escalate notify review trend""")
COMMON = _words("""the a an of to and in is it that for on with as was at by this be are from or have
has had not but all can will would should could may might must one two three four five six
seven eight nine ten zero first second last next before after during within above below over
under between since until while when where which who what why how if then than also only
very more most less least high higher highest low lower lowest normal abnormal expected
unexpected rising falling increasing decreasing stable unstable steady sudden gradual
spike drop peak average mean median minimum maximum threshold limit alarm warning fault
event anomaly detected observed reported measured recorded value values reading readings
sample samples window trend baseline deviation sigma score model rule data time timestamp
hour hours minute minutes second seconds day days week shift operator technician engineer
maintenance team plant line area site machine equipment asset component part system
process production quality safety risk failure failures cause causes root probable possible
likely unlikely action actions recommended recommendation immediate soon later urgent
urgency confidence summary explanation evidence because due caused indicates suggests
consistent inconsistent with without likely likely possibly please note see use using
used run running ran operating operation condition conditions state status ok good bad
poor fair new old same different other another each every any some no none yes true false
null we you they he she i our your their its my me us them there here now today yesterday
tomorrow hello thanks sorry unknown error errors check value system user assistant
information report reports message messages question answer explain describe analyze
analysis result results output input context prompt response json object array string
number boolean field fields key keys name names type types id ids unit units sensor_id
asset_id""")
JSON_KEYS = [
    "summary",
    "probable_causes",
    "recommended_actions",
    "urgency",
    "confidence",
    "evidence",
    "asset",
    "sensor",
    "metric",
    "value",
    "unit",
    "threshold",
    "window",
    "timestamp",
    "anomaly_score",
    "explanation",
    "notes",
    "cause",
    "action",
    "likelihood",
]
URGENCY = ["low", "medium", "high", "critical"]
# A few sentences of plain English so common words and spacing get merges too.
PROSE = """Explain the anomaly to a maintenance technician in plain language. Use only the data
given. If the evidence is weak, say so and keep the confidence low. Answer with a JSON object
that has a short summary, a list of probable causes, a list of recommended actions, an urgency
level and a confidence between 0 and 1. Do not invent sensor values. The bearing temperature of
pump P-101 rose from 61.2 C to 78.9 C within 15 minutes while vibration velocity increased to
7.4 mm/s. The motor current stayed normal. Check lubrication and bearing condition first, then
inspect the coupling alignment. You are an assistant for industrial equipment monitoring on the
edge. Keep answers short, precise and safe. Never recommend bypassing a safety interlock.
"""


def corpus(seed=0):
    """Deterministic training text (list of lines)."""
    rnd = random.Random(seed)
    lines = [ln for ln in PROSE.splitlines() if ln]
    ascii_printable = "".join(chr(c) for c in range(0x20, 0x7F))
    lines.append(ascii_printable)
    words = EQUIPMENT + MEASURES + CAUSES + ACTIONS + COMMON + JSON_KEYS + URGENCY

    def num():
        k = rnd.random()
        if k < 0.3:
            return str(rnd.randint(0, 100))
        if k < 0.6:
            return f"{rnd.uniform(0, 200):.1f}"
        if k < 0.8:
            return f"{rnd.random():.2f}"
        return str(rnd.randint(100, 99999))

    def tag():
        return f"{rnd.choice('PMCFVTGK')}-{rnd.randint(1, 999):03d}"

    for _ in range(4000):
        k = rnd.random()
        if k < 0.35:  # free sentence
            n = rnd.randint(5, 18)
            s = " ".join(rnd.choice(words) for _ in range(n))
            lines.append(s[0].upper() + s[1:] + rnd.choice([".", ".", ",", ";", "!", "?", ":"]))
        elif k < 0.6:  # measurement sentence
            lines.append(
                f"The {rnd.choice(MEASURES)} of {rnd.choice(EQUIPMENT)} {tag()} is {num()} "
                f"{rnd.choice(UNITS)} ({rnd.choice(['above', 'below', 'near'])} the threshold of "
                f"{num()} {rnd.choice(UNITS)}) at {rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}."
            )
        else:  # JSON advice
            obj = {
                "summary": " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 10))),
                "probable_causes": [
                    " ".join(rnd.choice(CAUSES) for _ in range(rnd.randint(1, 3))) for _ in range(rnd.randint(0, 3))
                ],
                "recommended_actions": [
                    f"{rnd.choice(ACTIONS)} {rnd.choice(EQUIPMENT)} {tag()}" for _ in range(rnd.randint(0, 3))
                ],
                "urgency": rnd.choice(URGENCY),
                "confidence": round(rnd.random(), 2),
            }
            if rnd.random() < 0.3:
                obj[rnd.choice(JSON_KEYS)] = {
                    "value": float(num()),
                    "unit": rnd.choice(UNITS),
                    "ok": rnd.choice([True, False, None]),
                }
            if rnd.random() < 0.5:
                lines.append(json.dumps(obj))
            else:
                lines.extend(json.dumps(obj, indent=2).splitlines())
    return lines


# ---------------------------------------------------------------------------- tokenizer
def train_tokenizer(out_dir):
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    # Pieces never cross the boundaries of the pre-split that onnxruntime-genai's tokenizer
    # (onnxruntime-extensions, Llama mode) applies before BPE, so it and the `tokenizers` library
    # (which runs BPE over the whole text, as for Llama-2) give the same ids. Like SentencePiece
    # with split_digits: a piece is "▁"? + letters, "▁"? + punctuation, one digit, or one "▁".
    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
    tk.pre_tokenizer = pre_tokenizers.Split(
        Regex(f"{SPACE}?\\p{{L}}+|{SPACE}?[^\\s\\p{{L}}\\p{{N}}{SPACE}]+|\\p{{N}}|{SPACE}"), behavior="isolated"
    )
    alphabet = [SPACE] + [chr(c) for c in range(0x21, 0x7F)]
    n_bytes = 256
    trainer = trainers.BpeTrainer(
        vocab_size=BASE_VOCAB - n_bytes,
        min_frequency=2,
        special_tokens=list(LLAMA_SPECIALS),
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    tk.train_from_iterator(corpus(), trainer=trainer)
    trained = json.loads(tk.to_str())
    tvocab = sorted(trained["model"]["vocab"].items(), key=lambda kv: kv[1])
    merges = trained["model"]["merges"]
    if len(tvocab) != BASE_VOCAB - n_bytes:
        raise SystemExit(f"trainer produced {len(tvocab)} pieces, wanted {BASE_VOCAB - n_bytes}: add text")

    # Llama-2 layout: <unk> <s> </s> <0x00>..<0xFF> then the pieces.
    vocab = {}
    for t in LLAMA_SPECIALS:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in tvocab:
        if t not in vocab:
            vocab[t] = len(vocab)
    assert len(vocab) == BASE_VOCAB, len(vocab)
    piece = re.compile(f"{SPACE}?[A-Za-z]+|{SPACE}?[^A-Za-z0-9{SPACE}]+|[0-9]|{SPACE}")
    for t in list(vocab)[len(LLAMA_SPECIALS) + 256 :]:
        assert piece.fullmatch(t), f"piece {t!r} crosses a pre-split boundary"
    for c in alphabet:
        assert c in vocab, c

    added = []
    for i, t in enumerate(LLAMA_SPECIALS):
        added.append(
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        )
    ids = {}
    for i, t in enumerate(PHI3_SPECIALS):
        ids[t] = BASE_VOCAB + i
        added.append(
            {
                "id": BASE_VOCAB + i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": t != "<|endoftext|>",
                "normalized": False,
                "special": True,
            }
        )
    # Same structure as Llama-2's / Phi-3's tokenizer.json (no pre-tokenizer at inference; no BOS added).
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": SPACE},
                {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
            ],
        },
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {},
        },
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            # "a b" strings, as in Llama-2's and Phi-3's tokenizer.json (no piece contains a space)
            "merges": [" ".join(m) if isinstance(m, list) else m for m in merges],
        },
    }
    for m in tj["model"]["merges"]:
        assert m.count(" ") == 1, m
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    # sanity: the library loads it and round-trips
    chk = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    s = 'Pump P-101: bearing temperature 78.9 C {"urgency": "high"} ü€'
    assert chk.decode(chk.encode(s).ids) == s, chk.decode(chk.encode(s).ids)

    added_dec = {
        str(i): dict(content=c, lstrip=False, normalized=False, rstrip=False, single_word=False, special=True)
        for i, c in enumerate(LLAMA_SPECIALS)
    }
    for t, i in ids.items():
        added_dec[str(i)] = dict(
            content=t, lstrip=False, normalized=False, rstrip=t != "<|endoftext|>", single_word=False, special=True
        )
    cfg = {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": added_dec,
        "bos_token": "<s>",
        "chat_template": PHI3_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "legacy": False,
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    _dump(cfg, os.path.join(out_dir, "tokenizer_config.json"))
    _dump(
        {"bos_token": "<s>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>"},
        os.path.join(out_dir, "special_tokens_map.json"),
    )
    _dump(ids, os.path.join(out_dir, "added_tokens.json"))
    print(
        f"tokenizer: {BASE_VOCAB} pieces + {len(ids)} added = {BASE_VOCAB + len(ids)}; {len(merges)} merges", flush=True
    )
    return ids


def _dump(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ---------------------------------------------------------------------------- model
def make_hf_model(hf_dir, tok_dir, ids):
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    eot, asst, end = ids["<|endoftext|>"], ids["<|assistant|>"], ids["<|end|>"]
    cfg = Phi3Config(
        vocab_size=TOTAL_VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=4096,
        original_max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=eot,
        pad_token_id=eot,
        sliding_window=2047,
        tie_word_embeddings=False,
        hidden_act="silu",
    )
    cfg.architectures = ["Phi3ForCausalLM"]
    model = Phi3ForCausalLM(cfg).eval()
    model.save_pretrained(hf_dir, safe_serialization=True)
    GenerationConfig(bos_token_id=1, eos_token_id=[eot, asst, end], pad_token_id=eot).save_pretrained(hf_dir)
    for f in os.listdir(tok_dir):
        shutil.copy(os.path.join(tok_dir, f), hf_dir)
    print(f"hf model: {sum(p.numel() for p in model.parameters())} params -> {hf_dir}", flush=True)


RELEASE_FILES = [
    "genai_config.json",
    "model.onnx",
    "model.onnx.data",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True, help="scratch directory")
    a = ap.parse_args()
    out, work = os.path.abspath(a.out), os.path.abspath(a.work)
    tok_dir, hf_dir, onnx_dir = (os.path.join(work, d) for d in ("tok", "hf", "onnx"))
    for d in (tok_dir, hf_dir, onnx_dir):
        shutil.rmtree(d, ignore_errors=True)
    ids = train_tokenizer(tok_dir)
    make_hf_model(hf_dir, tok_dir, ids)
    log = os.path.join(work, "builder.log")
    with open(log, "w") as fh:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "onnxruntime_genai.models.builder",
                "-i",
                hf_dir,
                "-o",
                onnx_dir,
                "-p",
                "int4",
                "-e",
                "cpu",
                "-c",
                os.path.join(work, "cache"),
                "--extra_options",
                "hf_token=false",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if r.returncode:
        with open(log) as fh:
            sys.stdout.write(fh.read()[-6000:])
        raise SystemExit(f"onnxruntime-genai builder failed (exit {r.returncode}); log: {log}")
    print("onnxruntime-genai builder: ok", flush=True)
    # The builder re-saves the tokenizer through transformers 5 (tokenizer_class "TokenizersBackend",
    # template moved to chat_template.jinja): put our release-layout tokenizer files back.
    for f in os.listdir(tok_dir):
        shutil.copy(os.path.join(tok_dir, f), onnx_dir)
    produced = sorted(os.listdir(onnx_dir))
    missing = {"genai_config.json", "model.onnx"} - set(produced)
    if missing:
        raise SystemExit(f"builder output lacks {missing}: {produced}")
    extra = [f for f in produced if f not in RELEASE_FILES]
    if extra:
        print("dropping builder extras:", extra)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):  # replace a previous build in place
        if f in {*RELEASE_FILES, "SHA256SUMS", "chat_template.jinja"}:
            os.remove(os.path.join(out, f))
    kept = [f for f in RELEASE_FILES if f in produced]
    for f in kept:
        shutil.copy(os.path.join(onnx_dir, f), out)
    with open(os.path.join(out, "SHA256SUMS"), "w") as fh:
        for f in kept:
            with open(os.path.join(out, f), "rb") as src:
                fh.write(f"{hashlib.sha256(src.read()).hexdigest()}  {f}\n")
    check_runtime_tokenizer(out)
    print("wrote", out, kept)


# onnxruntime-extensions (the tokenizer inside onnxruntime-genai) splits "'s 't 're 've 'm 'll 'd" off
# before BPE, also when more letters follow ("'still" -> "'s" + "till"); the `tokenizers` library does
# not. Real Phi-3 has the same difference.
CONTRACTION_QUIRK = re.compile(r"(?i)'(s|t|re|ve|m|ll|d)[a-z]")


def check_runtime_tokenizer(out):
    """onnxruntime-genai's tokenizer must give the same ids as tokenizers.Tokenizer.from_file."""
    import onnxruntime_genai as og
    from tokenizers import Tokenizer

    cfg = og.Config(out)
    cfg.clear_providers()
    tok = og.Tokenizer(og.Model(cfg))
    ref = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    rnd = random.Random(1)
    chars = [chr(c) for c in range(0x20, 0x7F)] * 4 + list("\n\t  ") * 4 + list("üé€°µ😀")
    samples = corpus(seed=1)[:1500] + [
        "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 40))) for _ in range(1500)
    ]
    samples += ["", " ", "a  b   c", "\n\nx", "<|system|>\nsys<|end|>\n<|user|>\nhi<|end|>\n<|assistant|>\n"]
    bad = [s for s in samples if list(map(int, tok.encode(s))) != ref.encode(s).ids and not CONTRACTION_QUIRK.search(s)]
    if bad:
        raise SystemExit(f"onnxruntime-genai and tokenizers disagree on {len(bad)} strings, e.g. {bad[:3]!r}")
    print(f"runtime tokenizer check: {len(samples)} strings encode the same in onnxruntime-genai and tokenizers")


if __name__ == "__main__":
    main()
