"""Write examples/records.jsonl and examples/records.csv: 20 realistic, clearly fake licence
records across every 作业类别, with drawn portrait photos (examples/photos/).

The people do not exist: names end in 示例/样例/测试, ID numbers are synthetic (valid check
digits, test-only serials 9xx). Issuer: the development authority `ecert keys init` creates.
Run: .venv/bin/python scripts/make_examples.py
"""

from __future__ import annotations

import base64
import csv
import json
from datetime import date
from pathlib import Path

from keys.store import DEV_ISSUER_CODE, DEV_ISSUER_NAME
from ofd.licence.catalogue import default_catalogue
from ofd.licence.fake import id_number, portrait

OUT = Path(__file__).resolve().parents[1] / "examples"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("示例", "样例", "测试")
REGIONS = ["110105", "310104", "440305", "510107", "610113", "420106", "330106", "370102", "210202", "650102"]


def records() -> list[dict]:
    cats = [c for c in default_catalogue().categories if c.items]
    out = []
    for i in range(20):
        cat = cats[i % len(cats)]
        item = cat.items[(i // len(cats)) % len(cat.items)]
        female = i % 3 == 1
        birth = date(1965 + (i * 7) % 35, 1 + i % 12, 1 + (i * 5) % 28)
        start = date(2021 + i % 5, 1 + (i * 3) % 12, 1 + (i * 11) % 28)
        out.append({
            "name": SURNAMES[i] + GIVEN[i % 3],
            "sex": "女" if female else "男",
            "id_number": id_number(REGIONS[i % len(REGIONS)], f"{birth:%Y%m%d}", 450 + i, female),
            "category": cat.name,
            "item": item.name,
            "first_issue_date": date(start.year - i % 3, start.month, start.day).isoformat(),
            "valid_from": start.isoformat(),
            "issuer_name": DEV_ISSUER_NAME,
            "issuer_code": DEV_ISSUER_CODE,
            "photo_file": f"photos/{i + 1:02d}.jpg",
        })
    return out


def main() -> None:
    (OUT / "photos").mkdir(parents=True, exist_ok=True)
    recs = records()
    with (OUT / "records.jsonl").open("w", encoding="utf-8") as f:
        for i, r in enumerate(recs):
            photo = portrait(i)
            (OUT / r["photo_file"]).write_bytes(photo)
            row = {k: v for k, v in r.items() if k != "photo_file"}
            row["photo"] = base64.b64encode(photo).decode()
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (OUT / "records.csv").open("w", encoding="utf-8", newline="") as f:
        fields = [k for k in recs[0] if k != "photo_file"] + ["photo"]
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in recs:
            row = {k: v for k, v in r.items() if k != "photo_file"}
            row["photo"] = r["photo_file"]
            w.writerow(row)
    print(f"wrote {len(recs)} records to {OUT}")


if __name__ == "__main__":
    main()
