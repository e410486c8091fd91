"""On-disk cache of preprocessed volumes, its metadata, and HDF5 export."""
