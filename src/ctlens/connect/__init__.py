"""ctlens.connect: hospital archives and results as DICOM.

Owns the DICOM networking node (``ctlens listen``, C-STORE / C-ECHO), sending to archives (STOW-RS, C-STORE),
and turning :class:`~ctlens.analysis.findings.Findings` into standard DICOM objects (SEG, TID 1500 SR,
Secondary Capture) that reference the source instances. The DICOMweb client itself lives in
:mod:`ctlens.io.dicomweb`, so that :func:`ctlens.load` can read ``dicomweb+http://`` addresses.
"""
