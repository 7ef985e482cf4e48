"""How well Hearth's bundled starter lists do on names they were not built around.

Uses the held-apart evaluation set (`../shared/data/eval/`), read-only, never bundled:
* false positives: `popular/benign-2000.txt` (popular names no list in the data set blocks);
* recall: `adult-gambling/sample-200.txt` (adult and gambling names from lists Hearth does not ship).

Run: python bench/eval_lists.py [--data DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blocklists.manager import ListManager, load_index  # noqa: E402


def _column(path: Path, col: int) -> list[str]:
    """One tab-separated column of a file, comments skipped (the eval files are TSV)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(line.split("\t")[col].strip().rstrip(".").lower())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--json", default=str(REPO / "bench" / "results" / "eval_lists.json"))
    args = ap.parse_args()
    eval_dir = Path(args.data) / "eval"
    with tempfile.TemporaryDirectory() as tmp:
        config = SimpleNamespace(data_dir=tmp, lists=[], feed=SimpleNamespace(url="", max_list_size=1 << 26),
                                 blocking=SimpleNamespace(starter_lists=True))
        ListManager(config, progress=lambda _m: None).update(fetch=False)
        index, meta = load_index(tmp)
        benign = _column(eval_dir / "popular" / "benign-2000.txt", 1)
        sample = _column(eval_dir / "adult-gambling" / "sample-200.txt", 0)
        fp = [n for n in benign if index.lookup(n) is not None]
        hits = {n: index.lookup(n) for n in sample}
        found = [n for n, m in hits.items() if m is not None]
        by_category: dict[str, int] = {}
        for m in hits.values():
            if m is not None:
                by_category[m.category] = by_category.get(m.category, 0) + 1
        index.close()
    result = {"false_positives": len(fp), "benign_names": len(benign), "fp_rate": round(len(fp) / len(benign), 4),
              "fp_examples": fp[:10], "recall_found": len(found), "recall_names": len(sample),
              "recall": round(len(found) / len(sample), 4), "recall_by_category": by_category}
    print("| measure | starter lists |\n|---|---:|")
    print(f"| false positives on eval/popular/benign-2000 | {len(fp)} of {len(benign)} ({result['fp_rate']:.1%}) |")
    print(f"| recall on eval/adult-gambling/sample-200 | {len(found)} of {len(sample)} ({result['recall']:.1%}) |")
    if fp:
        print("false positives:", ", ".join(fp[:10]))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
