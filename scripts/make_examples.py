"""Write examples/records.jsonl and examples/records.csv: 20 realistic, clearly fake licence
records across every 作业类别, with drawn portrait photos (examples/photos/).

The people do not exist: names end in 示例/样例/测试, ID numbers are synthetic (valid check
digits, test-only serials 9xx). Issuer: the development authority `ecert keys init` creates.
Run: .venv/bin/python scripts/make_examples.py
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
from datetime import date
from pathlib import Path

from PIL import Image, ImageDraw

from keys.store import DEV_ISSUER_CODE, DEV_ISSUER_NAME
from ofd.licence.catalogue import default_catalogue
from ofd.licence.idcard import id_check_char

OUT = Path(__file__).resolve().parents[1] / "examples"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("示例", "样例", "测试")
REGIONS = ["110105", "310104", "440305", "510107", "610113", "420106", "330106", "370102", "210202", "650102"]


def portrait(seed: int) -> bytes:
    rnd = random.Random(seed)
    w, h = 300, 400
    img = Image.new("RGB", (w, h), (rnd.randint(200, 235), rnd.randint(215, 240), 245))
    d = ImageDraw.Draw(img)
    skin = (rnd.randint(200, 235), rnd.randint(160, 195), rnd.randint(130, 160))
    d.rectangle((60, 300, 240, 400), fill=(rnd.randint(20, 90), rnd.randint(40, 90), rnd.randint(90, 140)))
    d.rectangle((125, 250, 175, 310), fill=skin)
    d.ellipse((85, 90, 215, 260), fill=skin)
    d.chord((80, 70, 220, 200), 180, 360, fill=(rnd.randint(10, 60),) * 3)
    for x in (120, 165):
        d.ellipse((x, 160, x + 14, 170), fill=(30, 30, 30))
    d.arc((125, 200, 175, 230), 20, 160, fill=(150, 60, 60), width=3)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=82)
    return buf.getvalue()


def records() -> list[dict]:
    cats = [c for c in default_catalogue().categories if c.items]
    out = []
    for i in range(20):
        cat = cats[i % len(cats)]
        item = cat.items[(i // len(cats)) % len(cat.items)]
        female = i % 3 == 1
        birth = date(1965 + (i * 7) % 35, 1 + i % 12, 1 + (i * 5) % 28)
        serial = 900 + 2 * i + (0 if female else 1)
        first17 = f"{REGIONS[i % len(REGIONS)]}{birth:%Y%m%d}{serial:03d}"
        start = date(2021 + i % 5, 1 + (i * 3) % 12, 1 + (i * 11) % 28)
        out.append({
            "name": SURNAMES[i] + GIVEN[i % 3],
            "sex": "女" if female else "男",
            "id_number": first17 + id_check_char(first17),
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
