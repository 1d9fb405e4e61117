"""Developer tool (not used at run time): add to items.csv, as dictionary-only rows (no sim_var: never charted),
every ITEMID that ../shared/docs/cohort.md or adrl/mimic/facts/*.csv name and the MIMIC-III demo dictionaries hold
but items.csv lacks, so the synthetic D_ITEMS / D_LABITEMS pass the ingest's dictionary check (cohort.md 3.1) as
the real ones do. Run: python adrl/synth/facts/_add_dictionary_items.py <demo_dir> <cohort.md> [concept csv ...]
"""
import re
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
PROV = ("item named by {src}, dictionary only (the simulator does not chart it); label/dbsource/linksto from "
        "MIMIC-III demo v1.4 dictionary (ODbL, doi:10.13026/C2HM2Q)")


def main(demo: Path, cohort_md: Path, concept_csvs: list[Path]):
    items = pd.read_csv(HERE / "items.csv", dtype=str, keep_default_na=False)
    have = set(items.itemid.astype(int))
    wanted: dict[int, str] = {}
    for m in re.finditer(r"\b(\d{3,6})\b", cohort_md.read_text()):
        wanted.setdefault(int(m.group(1)), "cohort.md")
    for f in concept_csvs:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        if "itemid" in df:
            for x in df.itemid:
                if x.isdigit():
                    wanted.setdefault(int(x), f"adrl/mimic/facts/{f.name}")
    di = pd.read_csv(demo / "D_ITEMS.csv.gz", dtype=str, keep_default_na=False)
    dl = pd.read_csv(demo / "D_LABITEMS.csv.gz", dtype=str, keep_default_na=False)
    rows = []
    for d, name in ((di, "d_items"), (dl, "d_labitems")):
        d.columns = [c.lower() for c in d.columns]
        for _, r in d[d.itemid.astype(int).isin(set(wanted) - have)].iterrows():
            row = {c: "" for c in items.columns}
            row.update({c: r[c] for c in r.index if c in row and c != "row_id"})
            row.update(dictionary=name, provenance=PROV.format(src=wanted[int(r.itemid)]))
            rows.append(row)
    out = pd.concat([items, pd.DataFrame(rows, columns=items.columns)], ignore_index=True)
    out.to_csv(HERE / "items.csv", index=False)
    print(f"added {len(rows)} dictionary-only items")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), [Path(x) for x in sys.argv[3:]])
