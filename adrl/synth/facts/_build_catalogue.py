"""Developer tool (not used at run time): rebuild items.csv and antibiotics.csv of the synthetic hospital.

Item numbers come from ../shared/docs/cohort.md (sections 4.2-4.4, 5.1-5.2, Appendix A) plus a handful of real
non-concept items; labels, DBSOURCE, LINKSTO, CATEGORY, UNITNAME, FLUID and LOINC are copied from the MIMIC-III
demo's D_ITEMS / D_LABITEMS (ODbL v1.0, doi:10.13026/C2HM2Q). The `sim_*` columns say how the simulator charts
an item. Run: python adrl/synth/facts/_build_catalogue.py <demo_dir> <cohort.md>
"""
import re
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
PROV_DEMO = "label/dbsource/linksto from MIMIC-III demo v1.4 dictionary (ODbL, doi:10.13026/C2HM2Q)"

# (itemid, sim_var, sim_system, sim_uom, sim_scale, sim_weight, note)
# sim_system: cv | mv | lab (LABEVENTS, both systems) ; sim_scale: how the value is written
CHART = [
    # CareVue chartevents
    (211, "HR", "cv", "BPM", "", 1, "cohort.md 4.2 HR"),
    (51, "SysBP_art", "cv", "mmHg", "", 1, "4.2 SysBP arterial"), (52, "MeanBP_art", "cv", "mmHg", "", 1, "4.2"),
    (8368, "DiaBP_art", "cv", "mmHg", "", 1, "4.2"), (455, "SysBP_nbp", "cv", "mmHg", "", 1, "4.2 NBP"),
    (456, "MeanBP_nbp", "cv", "mmHg", "", 1, "4.2"), (8441, "DiaBP_nbp", "cv", "mmHg", "", 1, "4.2"),
    (618, "RR", "cv", "BPM", "", 1, "4.2"), (646, "SpO2", "cv", "%", "", 1, "4.2"),
    (678, "Temp", "cv", "Deg. F", "F", 0.8, "4.2 Temperature F"), (676, "Temp", "cv", "Deg. C", "C", 0.2, "4.2 + 676"),
    (198, "GCS", "cv", "points", "", 1, "4.2 GCS Total"), (184, "GCS_eye", "cv", "", "", 1, "4.2 + components"),
    (454, "GCS_motor", "cv", "", "", 1, "4.2"), (723, "GCS_verbal", "cv", "", "", 1, "4.2"),
    (3420, "FiO2", "cv", "%", "pct", 0.6, "4.2 FIO2 (percent)"), (190, "FiO2", "cv", "torr", "frac", 0.4, "4.2 FiO2 Set (fraction)"),
    (470, "O2flow", "cv", "LPM", "", 1, "4.2 O2 Flow"), (467, "O2device", "cv", "", "text", 1, "4.2 O2 Delivery Device"),
    (720, "VentMode", "cv", "", "text", 1, "A.2 Ventilator Mode"), (505, "PEEP", "cv", "cmH2O", "", 1, "A.2 PEEP"),
    (535, "PIP", "cv", "cmH2O", "", 1, "A.2 Peak Insp. Pressure"), (682, "TidalVol", "cv", "ml", "", 1, "A.2 tidal volume"),
    (640, "Extubation", "cv", "", "text", 1, "A.2 extubation (Significant Events)"),
    (762, "Weight", "cv", "kg", "kg", 0.7, "4.3 Admit Wt"), (3581, "Weight", "cv", "lb", "lb", 0.3, "4.3 Present Weight (lb)"),
    (763, "WeightDaily", "cv", "kg", "kg", 1, "4.3 Daily Weight"),
    (829, "Potassium", "cv", "mEq/L", "", 1, "4.2"), (837, "Sodium", "cv", "mEq/L", "", 1, "4.2"),
    (788, "Chloride", "cv", "mEq/L", "", 1, "4.2"), (811, "Glucose", "cv", "mg/dL", "", 1, "4.2"),
    (807, "Fingerstick", "cv", "mg/dL", "", 1, "4.2 Fingerstick Glucose"), (821, "Magnesium", "cv", "mg/dL", "", 1, "4.2"),
    (786, "Calcium", "cv", "mg/dL", "", 1, "4.2"), (814, "Hb", "cv", "g/dL", "", 1, "4.2"), (813, "Hct", "cv", "%", "", 1, "4.4"),
    (1127, "WBC_count", "cv", "K/uL", "", 1, "4.2"), (828, "Platelets_count", "cv", "K/uL", "", 1, "4.2"),
    (825, "PTT", "cv", "sec", "", 1, "4.2"), (824, "PT", "cv", "sec", "", 1, "4.2"), (815, "INR", "cv", "", "", 1, "4.2"),
    (780, "Arterial_pH", "cv", "", "", 1, "4.2"), (779, "paO2", "cv", "mmHg", "", 1, "4.2"),
    (778, "paCO2", "cv", "mmHg", "", 1, "4.2"), (776, "Arterial_BE", "cv", "mEq/L", "", 1, "4.2"),
    (834, "SaO2", "cv", "%", "", 1, "4.2 SaO2 (kept as SpO2)"), (1531, "Arterial_lactate", "cv", "mmol/L", "", 1, "4.2"),
    (781, "BUN", "cv", "mg/dL", "", 1, "4.2"), (791, "Creatinine", "cv", "mg/dL", "", 1, "4.2"),
    (770, "SGOT", "cv", "IU/L", "", 1, "4.2"), (769, "SGPT", "cv", "IU/L", "", 1, "4.2"),
    (848, "Total_bili", "cv", "mg/dL", "", 1, "4.2"), (803, "Direct_bili", "cv", "mg/dL", "", 1, "4.4"),
    (938, "CultureCE", "cv", "", "text", 0.5, "A.1 blood cultures"), (941, "CultureCE", "cv", "", "text", 0.3, "A.1 urine culture"),
    (3333, "CultureCE", "cv", "", "text", 0.2, "A.1 Blood Cultures"), (6035, "UrinalysisSent", "cv", "", "text", 1, "A.1 x Urinalysis sent (not a culture)"),
    # MetaVision chartevents
    (220045, "HR", "mv", "bpm", "", 1, "4.2"),
    (220050, "SysBP_art", "mv", "mmHg", "", 1, "4.2 +"), (220052, "MeanBP_art", "mv", "mmHg", "", 1, "4.2"),
    (220051, "DiaBP_art", "mv", "mmHg", "", 1, "4.2 +"), (220179, "SysBP_nbp", "mv", "mmHg", "", 1, "4.2"),
    (220181, "MeanBP_nbp", "mv", "mmHg", "", 1, "4.2"), (220180, "DiaBP_nbp", "mv", "mmHg", "", 1, "4.2 +"),
    (220210, "RR", "mv", "insp/min", "", 1, "4.2"), (220277, "SpO2", "mv", "%", "", 1, "4.2"),
    (223761, "Temp", "mv", "?F", "F", 0.85, "4.2"), (223762, "Temp", "mv", "?C", "C", 0.15, "4.2"),
    (220739, "GCS_eye", "mv", "", "", 1, "4.2 +"), (223900, "GCS_verbal", "mv", "", "", 1, "4.2 +"),
    (223901, "GCS_motor", "mv", "", "", 1, "4.2 +"), (228096, "RASS", "mv", "", "", 1, "4.4 RASS"),
    (223835, "FiO2", "mv", "", "pct", 1, "4.2 Inspired O2 Fraction (mostly percent)"),
    (223834, "O2flow", "mv", "L/min", "", 1, "4.2"), (226732, "O2device", "mv", "", "text", 1, "4.2 +"),
    (224684, "TidalVol", "mv", "mL", "", 1, "A.2"), (220339, "PEEP", "mv", "cmH2O", "", 1, "A.2"),
    (224695, "PIP", "mv", "cmH2O", "", 1, "A.2"), (224687, "MinuteVol", "mv", "L/min", "", 1, "A.2"),
    (226512, "Weight", "mv", "kg", "kg", 0.7, "4.3"), (226531, "Weight", "mv", "lbs", "lb", 0.3, "4.3 +"),
    (224639, "WeightDaily", "mv", "kg", "kg", 1, "4.3"),
    (227442, "Potassium", "mv", "mEq/L", "", 1, "4.2"), (220645, "Sodium", "mv", "mEq/L", "", 1, "4.2"),
    (220602, "Chloride", "mv", "mEq/L", "", 1, "4.2"), (220621, "Glucose", "mv", "mg/dL", "", 1, "4.2"),
    (225664, "Fingerstick", "mv", "mg/dL", "", 1, "4.2"), (220635, "Magnesium", "mv", "mg/dL", "", 1, "4.2"),
    (225625, "Calcium", "mv", "mg/dL", "", 1, "4.2"), (220228, "Hb", "mv", "g/dl", "", 1, "4.2"),
    (220545, "Hct", "mv", "%", "", 1, "4.4"), (220546, "WBC_count", "mv", "K/uL", "", 1, "4.2"),
    (227457, "Platelets_count", "mv", "K/uL", "", 1, "4.2"), (227466, "PTT", "mv", "sec", "", 1, "4.2"),
    (227467, "INR", "mv", "", "", 1, "4.2"), (224828, "Arterial_BE", "mv", "mEq/L", "", 1, "4.2"),
    (227443, "HCO3", "mv", "mEq/L", "", 1, "4.2"), (225668, "Arterial_lactate", "mv", "mmol/L", "", 1, "4.2"),
    (225624, "BUN", "mv", "mg/dL", "", 1, "4.2"), (220615, "Creatinine", "mv", "mg/dL", "", 1, "4.2"),
    (225690, "Total_bili", "mv", "mg/dL", "", 1, "4.2"), (225651, "Direct_bili", "mv", "mg/dL", "", 1, "4.4"),
    (225722, "CultureCE", "mv", "", "text", 1, "A.1 line-tip culture"),
    # LABEVENTS (both systems)
    (50971, "Potassium", "lab", "mEq/L", "", 1, "4.2"), (50983, "Sodium", "lab", "mEq/L", "", 1, "4.2"),
    (50902, "Chloride", "lab", "mEq/L", "", 1, "4.2"), (50931, "Glucose", "lab", "mg/dL", "", 1, "4.2"),
    (50960, "Magnesium", "lab", "mg/dL", "", 1, "4.2"), (50893, "Calcium", "lab", "mg/dL", "", 1, "4.2"),
    (51222, "Hb", "lab", "g/dL", "", 1, "4.2"), (51221, "Hct", "lab", "%", "", 1, "4.4"),
    (51301, "WBC_count", "lab", "K/uL", "", 0.8, "4.2"), (51300, "WBC_count", "lab", "K/uL", "", 0.2, "4.2"),
    (51265, "Platelets_count", "lab", "K/uL", "", 1, "4.2"), (51275, "PTT", "lab", "sec", "", 1, "4.2"),
    (51274, "PT", "lab", "sec", "", 1, "4.2"), (51237, "INR", "lab", "", "", 1, "4.2"),
    (50820, "Arterial_pH", "lab", "units", "", 1, "4.2 (arterial only when specimen ART)"),
    (50821, "paO2", "lab", "mm Hg", "", 1, "4.2"), (50818, "paCO2", "lab", "mm Hg", "", 1, "4.2"),
    (50802, "Arterial_BE", "lab", "mEq/L", "", 1, "4.2"), (50882, "HCO3", "lab", "mEq/L", "", 1, "4.2"),
    (50803, "HCO3_gas", "lab", "mEq/L", "", 1, "4.2"), (50813, "Arterial_lactate", "lab", "mmol/L", "", 1, "4.2"),
    (50800, "Specimen", "lab", "", "text", 1, "4.2 specimen type of blood gases"),
    (50822, "Potassium_wb", "lab", "mEq/L", "", 1, "4.2"), (50809, "Glucose_gas", "lab", "mg/dL", "", 1, "4.2"),
    (51006, "BUN", "lab", "mg/dL", "", 1, "4.2"), (50912, "Creatinine", "lab", "mg/dL", "", 1, "4.2"),
    (50878, "SGOT", "lab", "IU/L", "", 1, "4.2"), (50861, "SGPT", "lab", "IU/L", "", 1, "4.2"),
    (50885, "Total_bili", "lab", "mg/dL", "", 1, "4.2"), (50883, "Direct_bili", "lab", "mg/dL", "", 1, "4.4"),
    (51464, "UrineBili", "lab", "", "text", 1, "4.2 x urine bilirubin (qualitative)"),
    # outputevents
    (40055, "Urine", "cv", "ml", "", 0.85, "A.4 Urine Out Foley"), (40069, "Urine", "cv", "ml", "", 0.15, "A.4 Urine Out Void"),
    (226559, "Urine", "mv", "mL", "", 0.85, "A.4 Foley"), (226560, "Urine", "mv", "mL", "", 0.15, "A.4 Void"),
    (227510, "TFResidual", "mv", "mL", "", 1, "A.4 x TF Residual (not urine)"),
    (227488, "GUIrrigantIn", "mv", "mL", "", 1, "A.4 + GU Irrigant Volume In"),
    (227489, "GUIrrigantOut", "mv", "mL", "", 1, "A.4 GU Irrigant/Urine Volume Out"),
    # inputs: fluids (sim_scale = tonicity factor, corrected)
    (30018, "Fluid", "cv", "ml", "1", 0.45, "A.3 .9% Normal Saline"), (30021, "Fluid", "cv", "ml", "1", 0.25, "A.3 Lactated Ringers"),
    (30060, "Fluid", "cv", "ml", "1", 0.05, "A.3 D5NS"), (30008, "Fluid", "cv", "ml", "1", 0.08, "A.3 Albumin 5%"),
    (30001, "Fluid", "cv", "ml", "1", 0.07, "A.3 Packed RBC's"), (30066, "Fluid", "cv", "ml", "1", 0.10, "A.3 Carrier"),
    (225158, "Fluid", "mv", "ml", "1", 0.45, "A.3 NaCl 0.9%"), (225828, "Fluid", "mv", "ml", "1", 0.25, "A.3 LR"),
    (220864, "Fluid", "mv", "ml", "1", 0.08, "A.3 Albumin 5%"), (225168, "Fluid", "mv", "ml", "1", 0.07, "A.3 Packed Red Blood Cells"),
    (225943, "Fluid", "mv", "ml", "1", 0.15, "A.3 Solution"),
    # inputs: vasopressors (sim_scale = NE-eq factor, ai_clinician; sim_uom = rate unit)
    (30120, "Vaso_norepinephrine", "cv", "mcgkgmin", "1", 0.6, "5.2 Levophed-k"),
    (30047, "Vaso_norepinephrine", "cv", "mcgmin", "1", 0.4, "5.2 Levophed (mcg/min rate)"),
    (30128, "Vaso_phenylephrine", "cv", "mcgkgmin", "0.45", 0.6, "5.2 Neosynephrine-k"),
    (30127, "Vaso_phenylephrine", "cv", "mcgmin", "0.45", 0.4, "5.2 Neosynephrine"),
    (30043, "Vaso_dopamine", "cv", "mcgkgmin", "0.01", 1, "5.2 Dopamine"),
    (30119, "Vaso_epinephrine", "cv", "mcgkgmin", "1", 0.7, "5.2 Epinephrine-k"),
    (30044, "Vaso_epinephrine", "cv", "mcgmin", "1", 0.3, "5.2 + Epinephrine"),
    (30051, "Vaso_vasopressin", "cv", "Umin", "5", 1, "5.2 Vasopressin (5 per U/min)"),
    (221906, "Vaso_norepinephrine", "mv", "mcg/kg/min", "1", 1, "5.2 Norepinephrine"),
    (221749, "Vaso_phenylephrine", "mv", "mcg/kg/min", "0.45", 1, "5.2 Phenylephrine"),
    (221662, "Vaso_dopamine", "mv", "mcg/kg/min", "0.01", 1, "5.2 Dopamine"),
    (221289, "Vaso_epinephrine", "mv", "mcg/kg/min", "1", 1, "5.2 Epinephrine"),
    (222315, "Vaso_vasopressin", "mv", "units/hour", "5", 1, "5.2 Vasopressin (units/hour)"),
    # procedureevents_mv cultures
    (225401, "CulturePE", "mv", "", "", 0.6, "A.1 + Blood Cultured"), (225454, "CulturePE", "mv", "", "", 0.2, "A.1 + Urine Culture"),
    (225444, "CulturePE", "mv", "", "", 0.1, "A.1 + Pan Culture"), (225451, "CulturePE", "mv", "", "", 0.1, "A.1 + Sputum Culture"),
    # microbiology specimens
    (70012, "Micro", "lab", "BLOOD CULTURE", "", 0.45, "MICROBIOLOGYEVENTS specimen"), (70079, "Micro", "lab", "URINE", "", 0.3, ""),
    (70062, "Micro", "lab", "SPUTUM", "", 0.15, ""), (70070, "Micro", "lab", "SWAB", "", 0.05, ""),
    (70091, "Micro", "lab", "MRSA SCREEN", "", 0.05, ""),
]
# non-concept items, charted so extraction faces the real filter ratio (value text | numeric range)
IRRELEVANT = [
    (212, "cv", "Sinus Rhythm|Atrial Fib|Sinus Tachy"), (161, "cv", "None|PVC's|PAC's"), (159, "cv", "None|Occ|Rare"),
    (160, "cv", "num:0:12"), (31, "cv", "Bedrest|Chair"), (80, "cv", "Present|Hypoactive|Absent"), (128, "cv", "Full Code|DNR"),
    (432, "cv", "Alert|Arouse to Voice|Sleeping"), (547, "cv", "Left Side|Right Side|Supine"), (550, "cv", "Standard|Contact"),
    (617, "cv", "Regular|Labored"), (674, "cv", "Oral|Axillary|Core"), (1337, "cv", "4 Calm/Cooperative|3 Sedated"),
    (5815, "cv", "num:50:50"), (8549, "cv", "num:120:120"),
    (220048, "mv", "SR (Sinus Rhythm)|AF (Atrial Fibrillation)|ST (Sinus Tachycardia)"), (224650, "mv", "None|PVC's"),
    (224080, "mv", "30 degrees|45 degrees"), (224082, "mv", "Side to Side|Supine"), (224084, "mv", "Bed|Chair"),
    (224093, "mv", "Left Side|Right Side|Supine"), (223986, "mv", "Clear|Diminished|Crackles"),
    (223987, "mv", "Clear|Diminished|Crackles"), (224054, "mv", "No Impairment|Slight Impairment"),
    (224055, "mv", "Rarely Moist|Occasionally Moist"), (227969, "mv", "Bed locked in low position|Call bell in reach"),
    (220046, "mv", "num:120:120"), (220047, "mv", "num:50:50"), (226253, "mv", "num:88:90"), (223999, "mv", "Moist|Dry"),
    # labs and inputs/PE nobody reads
    (50868, "lab", "num:8:20"), (50970, "lab", "num:2:5"), (51146, "lab", "num:0:1"), (51200, "lab", "num:0:4"),
    (51214, "lab", "num:150:500"), (51244, "lab", "num:5:30"), (51248, "lab", "num:27:33"), (51249, "lab", "num:31:35"),
    (51250, "lab", "num:80:100"), (51256, "lab", "num:50:90"), (51277, "lab", "num:12:17"), (51279, "lab", "num:2.8:5"),
    (30056, "cv", "in:ml:50:400"), (30131, "cv", "in:mcgkgmin:10:50"), (220949, "mv", "in:ml:50:250"),
    (222168, "mv", "in:mcg/kg/min:10:50"), (224263, "mv", "pe"), (225459, "mv", "pe"), (225792, "mv", "pe"),
]
SPURIOUS = {0, 2, 4, 11, 12, 20, 22, 24, 35, 40, 70, 100, 105, 112, 135, 148, 150, 168}


def cohort_itemids(md: str) -> set[int]:
    ids: set[int] = set()
    sec = md[md.index("### 4.2"):md.index("## 5. Actions")]
    for line in sec.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            cell = cells[1] if line.startswith(("| Weight_kg", "| mechvent")) else cells[-1]
            ids.update(int(m) for m in re.findall(r"(?<![\d.])(\d{1,6})(?![\d.%])", cell))
    s52 = md[md.index("### 5.2"):md.index("Unit handling")]
    ids.update(int(m) for m in re.findall(r"(?<![\d.])(\d{5,6})(?![\d.%])", s52))
    app = md[md.index("## Appendix A"):md.index("## Appendix B")]
    app = re.sub(r"\d+(\.\d+)?\s?%", "", re.sub(r"\[[^\]]*\]", "", app))
    for a, b in re.findall(r"(\d{3,6})\s?[–-]\s?(\d{3,6})", app):
        ids.update(range(int(a), int(b) + 1))
    ids.update(int(m) for m in re.findall(r"(?<![\d.A-Z])(\d{1,6})(?![\d.%])", app))
    return ids - SPURIOUS


def main(demo: Path, md_path: Path) -> None:
    di = pd.read_csv(demo / "D_ITEMS.csv.gz", dtype=str, keep_default_na=False)
    dl = pd.read_csv(demo / "D_LABITEMS.csv.gz", dtype=str, keep_default_na=False)
    di["ITEMID"] = di.ITEMID.astype(int)
    dl["ITEMID"] = dl.ITEMID.astype(int)
    md = md_path.read_text()
    want = cohort_itemids(md) | {c[0] for c in CHART} | {c[0] for c in IRRELEVANT}
    sim = {c[0]: c for c in CHART}
    irr = {c[0]: c for c in IRRELEVANT}
    rows = []
    for iid in sorted(want):
        if iid in set(dl.ITEMID):
            r = dl[dl.ITEMID == iid].iloc[0]
            base = dict(dictionary="d_labitems", itemid=iid, label=r.LABEL, abbreviation="", dbsource="",
                        linksto="labevents", category=r.CATEGORY, unitname="", param_type="", conceptid="",
                        fluid=r.FLUID, loinc_code=r.LOINC_CODE)
        elif iid in set(di.ITEMID):
            r = di[di.ITEMID == iid].iloc[0]
            base = dict(dictionary="d_items", itemid=iid, label=r.LABEL, abbreviation=r.ABBREVIATION,
                        dbsource=r.DBSOURCE, linksto=r.LINKSTO, category=r.CATEGORY, unitname=r.UNITNAME,
                        param_type=r.PARAM_TYPE, conceptid=r.CONCEPTID, fluid="", loinc_code="")
        else:
            print("not in demo dictionaries:", iid)
            continue
        if iid in sim:
            _, var, system, uom, scale, w, note = sim[iid]
            base.update(sim_var=var, sim_system=system, sim_uom=uom, sim_scale=scale, sim_weight=w,
                        provenance=f"cohort.md {note}; {PROV_DEMO}")
        elif iid in irr:
            _, system, spec = irr[iid]
            base.update(sim_var="irrelevant", sim_system=system, sim_uom="", sim_scale=spec, sim_weight=1,
                        provenance=f"non-concept item charted for the filter ratio; {PROV_DEMO}")
        else:
            base.update(sim_var="", sim_system="", sim_uom="", sim_scale="", sim_weight="",
                        provenance=f"cohort.md concept item (dictionary only, not charted); {PROV_DEMO}")
        rows.append(base)
    out = pd.DataFrame(rows)
    out.to_csv(HERE / "items.csv", index=False)
    print(len(out), "items;", (out.sim_var != "").sum(), "charted")

    # antibiotics: every GSN of Appendix B; drug and route as most often seen in the demo where it is used
    b = md[md.index("## Appendix B"):]
    gsns = sorted(set(re.findall(r"\b\d{6}\b", b)))
    p = pd.read_csv(demo / "PRESCRIPTIONS.csv.gz", dtype=str, keep_default_na=False)
    p = p[p.GSN.isin(gsns)]
    top = (p.groupby(["GSN", "DRUG", "ROUTE"]).size().reset_index(name="n")
           .sort_values(["GSN", "n"], ascending=[True, False]).drop_duplicates("GSN"))
    top = top[top.ROUTE.isin(["IV", "PO", "PO/NG", "IV DRIP", "IM"])]
    ab = pd.DataFrame({"gsn": top.GSN, "drug": top.DRUG, "route": top.ROUTE, "systemic": 1,
                       "weight": top.n.astype(int)})
    extra = pd.DataFrame([
        {"gsn": "052050", "drug": "Vigamox", "route": "OD", "systemic": 0, "weight": 3},
        {"gsn": "009310", "drug": "Tobramycin Sulfate", "route": "IH", "systemic": 0, "weight": 1},
        {"gsn": "009299", "drug": "Gentamicin Sulfate", "route": "TP", "systemic": 0, "weight": 1},
    ])
    ab = pd.concat([ab, extra], ignore_index=True)
    ab["provenance"] = ("GSN from cohort.md Appendix B (AI Clinician list); drug/route as prescribed in the "
                        "MIMIC-III demo PRESCRIPTIONS (ODbL); systemic=0 routes are dropped by fixes.abx_routes")
    ab.to_csv(HERE / "antibiotics.csv", index=False)
    print(len(ab), "antibiotic rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
