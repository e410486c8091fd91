"""Seed 003's scripts (3D CLIP on CT-RATE) under their own flags: ``python -m ctlens.compat.ctclip.<script>``.

Each script parses the seed's flags and calls one ctlens function; docs/coming_from_ctclip.md lists every flag and
what it maps to.

============================  ===========================================================================
seed script                   ctlens
============================  ===========================================================================
``run_preprocess.py``         :func:`ctlens.cache.hdf5_export.export_hdf5` with ``ct_rate_metadata``
``run_train.py``              :func:`ctlens.training.clip.train.train_clip` (``ctlens clip train``)
``eval.py``                   :func:`ctlens.training.clip.evaluation.evaluate_zero_shot` (``clip evaluate``)
``zero_shot.py``              :func:`ctlens.pipelines.zero_shot.zero_shot` (``ctlens clip zero-shot``)
``split_validation.py``       :func:`ctlens.data.ct_report.patient_split` over CT-RATE's CSV files
``impression_section.py``     :func:`ctlens.llm.impressions.generate_impressions` (``ctlens impressions``)
============================  ===========================================================================
"""
