"""Bad data files: every step refuses them with one line naming the file (and row and column)
and exit status 2, before it loads a model or writes anything."""

from __future__ import annotations

import json

import pytest

from rcfd.cli import main

DEMO = {"id": "a", "split": "train", "prompt": "The film", "demo": " was fine.", "demo_reward": 0.5, "demo_tokens": 4}
EVAL = dict(DEMO, id="b", split="eval")
GEN = {"id": "b", "sample": 0, "prompt": "The film", "completion": " was good.", "completion_tokens": 4}
METRICS_HEADER = "task,method,seed,n,alignment"


def jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def without(row: dict, key: str) -> dict:
    return {k: v for k, v in row.items() if k != key}


# (step, its arguments with {bad} for the bad file (and {good}: a valid demos file), the bad file's
# bytes, what the one-line error says)
SCORE = ["score_demos", "--rm", "none", "--prompts", "{bad}", "--out", "{out}"]
TRAIN = ["train", "--method", "rcfd", "--policy", "none", "--rm", "none", "--data", "{bad}", "--out", "{out}"]
EVALUATE = ["evaluate", "--method", "rcfd", "--seed", "0", "--rm", "none", "--policy", "none", "--judge", "none",
            "--features", "none", "--data", "{bad}", "--scored", "{out}", "--metrics", "{out}", "--curve", "{out}"]
EVALUATE_GENS = [*EVALUATE[:EVALUATE.index("{bad}")], "{good}", "--generations", "{bad}",
                 *EVALUATE[EVALUATE.index("{bad}") + 1:]]
TABLE = ["table", "--params", '{"name": "table6"}', "--metrics", "{bad}", "--out", "{out}"]
CALIBRATION = ["calibration", "--params", '{"name": "calibration", "alignment": {}}', "--scored", "{bad}",
               "--metrics", "{metrics}", "--out", "{out}"]
RM = ["train_reward_model", "--params", '{"train": {"loss": "classification"}, "score": {}}', "--base", "none",
      "--data", "{bad}", "--prompts", "{good}", "--out", "{out}", "--metrics", "{out}"]
RM_PAIRS = [*RM[:2], '{"train": {"loss": "bradley_terry"}, "score": {}}', *RM[3:]]

CASES = [
    (SCORE, b"\xff\xfe{}\n", "bad: not UTF-8 text (byte 0)"),
    (SCORE, jsonl("[1, 2]"), "bad:1: expected a JSON object, got list"),
    (SCORE, jsonl('{"prompt": "x", '), "bad:1: not valid JSON"),
    (SCORE, jsonl(DEMO, '"just a string"'), "bad:2: expected a JSON object, got str"),
    (SCORE, b"", "bad: no rows"),
    (SCORE, b"\n\n", "bad: no rows"),
    (SCORE, jsonl(without(DEMO, "demo")), "bad: row 0 lacks column(s) ['demo']"),
    (SCORE, None, "bad: no such file"),
    (TRAIN, jsonl(without(DEMO, "split")), "bad: row 0 lacks column(s) ['split']"),
    (TRAIN, jsonl(EVAL), "bad: no rows with split 'train'"),
    (TRAIN, jsonl(dict(DEMO, demo_reward="abc")), "bad: row 0: column 'demo_reward' is 'abc', expected a finite number"),
    (TRAIN, jsonl(DEMO, dict(DEMO, demo_reward=float("nan"))), "bad: row 1: column 'demo_reward' is nan"),
    (TRAIN, jsonl(dict(DEMO, demo_reward=float("inf"))), "bad: row 0: column 'demo_reward' is inf"),
    (TRAIN, jsonl(dict(DEMO, demo_reward=True)), "bad: row 0: column 'demo_reward' is True"),
    (TRAIN, jsonl(dict(DEMO, demo_reward=None)), "bad: row 0: column 'demo_reward' is None"),
    (TRAIN, jsonl(without(DEMO, "demo_reward")), "bad: row 0 lacks column(s) ['demo_reward']"),
    ([*TRAIN[:2], "rcfd2", *TRAIN[3:]], jsonl(without(DEMO, "demo_tokens")), "bad: row 0 lacks column(s) ['demo_tokens']"),
    ([*TRAIN[:2], "dpo", *TRAIN[3:]], jsonl(DEMO), "bad: row 0 lacks column(s) ['rejected']"),
    ([*TRAIN[:2], "sft", *TRAIN[3:]], jsonl(without(DEMO, "prompt")), "bad: row 0 lacks column(s) ['prompt']"),
    (["generate", "--policy", "none", "--adapter", "none", "--data", "{bad}", "--out", "{out}"], jsonl(DEMO),
     "bad: no rows with split 'eval'"),
    (["generate", "--policy", "none", "--adapter", "none", "--data", "{bad}", "--out", "{out}"],
     jsonl(without(EVAL, "id")), "bad: row 0 lacks column(s) ['id']"),
    (EVALUATE, jsonl(DEMO, dict(EVAL, demo_tokens="four")), "bad: row 0: column 'demo_tokens' is 'four'"),
    (EVALUATE, jsonl(DEMO, dict(EVAL, demo_reward=float("nan"))), "bad: row 0: column 'demo_reward' is nan"),
    (EVALUATE, jsonl(DEMO), "bad: no rows with split 'eval'"),
    (EVALUATE_GENS, jsonl(dict(GEN, id="zzz")), "bad: 1 generation id(s) match no evaluation prompt"),
    (EVALUATE_GENS, jsonl(without(GEN, "completion_tokens")), "bad: row 0 lacks column(s) ['completion_tokens']"),
    (EVALUATE_GENS, jsonl("[]"), "bad:1: expected a JSON object, got list"),
    (RM, jsonl({"split": "train", "text": "good", "label": "x"}), "bad: row 0: column 'label' is 'x'"),
    (RM, jsonl({"split": "train", "label": 1}), "bad: row 0 lacks column(s) ['text']"),
    (RM_PAIRS, jsonl({"split": "train", "prompt": "p", "chosen": "c"}), "bad: row 0 lacks column(s) ['rejected']"),
    (TABLE, b"", "bad: metrics file has no rows"),
    (TABLE, (METRICS_HEADER + "\n").encode(), "bad: metrics file has no rows"),
    (TABLE, (METRICS_HEADER + "\nmovies,rcfd,0\n").encode(), "bad: row 0 has 3 fields, the header 5"),
    (TABLE, (METRICS_HEADER + "\nmovies,rcfdx,0,200,0.1\n").encode(), "bad: row 0: unknown method 'rcfdx'"),
    (TABLE, b"task,method,n\nmovies,rcfd,200\n", "bad: metrics file lacks column 'seed'"),
    (TABLE, b"task,method,seed\n\xffmovies,rcfd,0\n", "bad: cannot be read as a metrics file"),
    (CALIBRATION, jsonl({"id": "b", "method": "rcfd", "seed": 0}), "bad: row 0 lacks column(s) ['reward']"),
    (CALIBRATION, jsonl({"id": "b", "method": "sft", "seed": 0, "reward": 1.0}), "bad is not the run of"),
    (["training_curves", "--policies", "{bad}", "--out", "{out}"], None, "train_log.csv: missing (the training log"),
]


@pytest.mark.parametrize("argv,content,message", CASES, ids=[f"{c[0][0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_data_is_refused_in_one_line(argv, content, message, tmp_path, capsys):
    bad, good, out = tmp_path / "bad", tmp_path / "good.jsonl", tmp_path / "out" / "result"
    if content is not None:
        bad.write_bytes(content)
    good.write_bytes(jsonl(DEMO, EVAL))
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(METRICS_HEADER + "\nmovies,rcfd,0,200,0.1\n")
    paths = {"{bad}": bad, "{good}": good, "{out}": out, "{metrics}": metrics}
    args = [str(paths.get(a, a)) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith(f"rcfd {argv[0]}: error: "), err
    assert message in err[-1], err[-1]
    assert not out.parent.exists()  # nothing written


def test_a_failed_write_keeps_the_previous_result(tmp_path):
    """Outputs are written to a temporary file and renamed: a step that dies while writing leaves
    the previous result whole and no partial file."""
    from rcfd.utils import atomic, write_json

    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic(path) as tmp:
        tmp.write_text('{"a": ')
        raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"a": 1} and list(tmp_path.iterdir()) == [path]


def test_text_with_unicode_line_separators_round_trips(tmp_path):
    """Generated text may hold U+2028, U+0085 or U+001C, which JSON writes raw inside strings: a
    JSONL file splits at newlines only (str.splitlines() had cut such rows in two)."""
    from rcfd.utils import read_jsonl, write_jsonl

    rows = [{"id": i, "completion": f"a{sep}b"} for i, sep in enumerate(["\u2028", "\u2029", "\x85", "\x1c", "\r"])]
    write_jsonl(tmp_path / "x.jsonl", rows)
    assert read_jsonl(tmp_path / "x.jsonl") == rows
